"""Singing voice conversion routes: VevoSing, and the four Amphion SVC recipes (one entry deployment,
``SVC``, for the four; ``GET /api/svc/{model}/singers`` lists a checkpoint's singers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError

from models.svc.comosvc import MAX_TEACHER_STEPS, MIN_TEACHER_STEPS
from models.svc.diffusion import DEFAULT_PNDM_STEPS, MIN_PNDM_STEPS
from models.svc.pipeline import DEFAULT_KEY_SHIFT, KEY_SHIFT_RANGE, SVCInputError, parse_key_shift
from models.vevosing.orchestration import FM_STEPS, USE_SHIFTED_SRC
from serve_app.routes.common import (
    AUDIO_RESPONSES, ERROR_RESPONSES, RESPONSE_FORMAT_DOC, ResponseFormat, audio_model_route, check_upload_sizes,
    entry_deployment,
)
from serve_app.voices import VOICE_ERRORS, reference_from, voice_id_form

router = APIRouter(prefix="/api/svc", tags=["SVC"], dependencies=[Depends(check_upload_sizes)])

CONTENT = File(..., description="Source singing audio (melody)")
REFERENCE = File(None, description="Reference voice (timbre); or send `voice_id`")
VOICE_ID = voice_id_form()
SEED = Form(None, ge=0, le=2**31 - 1, description="Makes sampling reproducible for the same inputs")
SINGER_HEADER = "X-Amphion-Target-Singer"


@router.post("/vevosing", responses={**AUDIO_RESPONSES, **VOICE_ERRORS},
             summary="Singing voice conversion with VevoSing")
async def vevosing(
    request: Request,
    content_audio: UploadFile = CONTENT,
    reference_audio: Optional[UploadFile] = REFERENCE,
    voice_id: Optional[str] = VOICE_ID,
    mode: Literal["fm", "ar"] = Form("fm", description="`fm`: timbre only (flow matching); `ar`: full control "
                                                      "(the AR stage also takes the reference's style)"),
    use_shifted_src: bool = Form(USE_SHIFTED_SRC, description="Shift the source to the reference's key before taking its melody"),
    flow_matching_steps: int = Form(FM_STEPS, ge=1, le=128, description="Number of flow-matching steps (1 to 128)"),
    lyrics: Optional[str] = Form(None, max_length=2000, description="Lyrics for ar mode; transcribed when absent"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    ref = await reference_from(request, reference_audio, voice_id)
    return await audio_model_route(
        request, "vevosing", "generate",
        {"content_audio": (content_audio, "source"), "reference_audio": (ref.upload, "reference")},
        dict(mode=mode, use_shifted_src=use_shifted_src, flow_matching_steps=flow_matching_steps, lyrics=lyrics,
             seed=seed), response_format)


# ---------------------------------------------------------------------------------------------
# The four Amphion SVC recipes, as data


@dataclass(frozen=True)
class SVCRoute:
    key: str                              # registry key and path
    name: str
    steps: tuple[int, int, str] | None    # (min, max, what the default is) for models with diffusion steps


SVC_ROUTES = (
    SVCRoute("multiplecontentssvc", "MultipleContentsSVC",
             (MIN_PNDM_STEPS, DEFAULT_PNDM_STEPS, f"{DEFAULT_PNDM_STEPS}, the reference's (N steps cost N + 9 "
                                                  "denoiser calls)")),
    SVCRoute("diffcomosvc", "DiffComoSVC",
             (MIN_TEACHER_STEPS, MAX_TEACHER_STEPS, "the run's inference_steps for a teacher; a consistency student "
                                                    "samples in exactly 1")),
    SVCRoute("transformersvc", "TransformerSVC", None),
    SVCRoute("vitssvc", "VitsSVC", None),
)

KEY_SHIFT_DOC = (f"`autoshift` (default: the source's median F0 moved to the target singer's), `reference` (to the "
                 f"reference's), or semitones ({KEY_SHIFT_RANGE[0]} to {KEY_SHIFT_RANGE[1]})")
TARGET_SINGER_DOC = ("A singer of the checkpoint (`GET /api/svc/{model}/singers`); without it the singer whose median "
                     f"F0 is closest to reference_audio's is used (a pitch match, not a timbre match). The response's "
                     f"`{SINGER_HEADER}` header names the singer (percent-encoded UTF-8)")


def _checked_key_shift(value: str) -> int | str:
    try:
        return parse_key_shift(value)
    except SVCInputError as exc:
        raise RequestValidationError([{"type": "value_error", "loc": ("body", "key_shift"), "msg": str(exc),
                                       "input": value}]) from None


async def _convert(request: Request, route: SVCRoute, content_audio: UploadFile, reference_audio: UploadFile | None,
                   voice_id: str | None, target_singer: str | None, key_shift: str, diffusion_steps: int | None,
                   seed: int | None, response_format: str):
    if reference_audio is None and voice_id is None and target_singer is None:
        raise RequestValidationError([{"type": "missing", "loc": ("body", "reference_audio"),
                                       "msg": "send reference_audio (or voice_id), or target_singer"}])
    ref = await reference_from(request, reference_audio, voice_id, required=False)
    uploads = {"content_audio": (content_audio, "source")}
    if ref is not None:
        uploads["reference_audio"] = (ref.upload, "reference")
    response = await audio_model_route(
        request, route.key, "convert", uploads,
        dict(model=route.key, reference=None, target_singer=target_singer, key_shift=_checked_key_shift(key_shift),
             diffusion_steps=diffusion_steps, seed=seed), response_format,
        headers_from=lambda result: {SINGER_HEADER: quote(result["singer"], safe="")})
    return response


def _svc_routes(route: SVCRoute) -> None:
    summary = f"Singing voice conversion with {route.name} (experimental)"
    content = File(..., description="Source singing: any rate, stereo mixed down")
    reference = File(None, description="Reference singing or speech; picks the closest singer by median F0, and "
                                       "sets key_shift=reference's pitch. Optional with target_singer")
    singer = Form(None, min_length=1, max_length=200, description=TARGET_SINGER_DOC)
    shift = Form(DEFAULT_KEY_SHIFT, max_length=16, description=KEY_SHIFT_DOC)

    if route.steps is None:
        @router.post(f"/{route.key}", responses={**AUDIO_RESPONSES, **VOICE_ERRORS}, summary=summary, name=route.key)
        async def convert(request: Request, content_audio: UploadFile = content,
                          reference_audio: Optional[UploadFile] = reference, voice_id: Optional[str] = VOICE_ID,
                          target_singer: Optional[str] = singer,
                          key_shift: str = shift, seed: Optional[int] = SEED,
                          response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC)):
            return await _convert(request, route, content_audio, reference_audio, voice_id, target_singer, key_shift,
                                  None, seed, response_format)
    else:
        low, high, default = route.steps

        @router.post(f"/{route.key}", responses={**AUDIO_RESPONSES, **VOICE_ERRORS}, summary=summary, name=route.key)
        async def convert(request: Request, content_audio: UploadFile = content,
                          reference_audio: Optional[UploadFile] = reference, voice_id: Optional[str] = VOICE_ID,
                          target_singer: Optional[str] = singer,
                          key_shift: str = shift,
                          diffusion_steps: Optional[int] = Form(None, ge=low, le=high,
                                                                description=f"Diffusion steps ({low} to {high}; "
                                                                            f"default: {default})"),
                          seed: Optional[int] = SEED,
                          response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC)):
            return await _convert(request, route, content_audio, reference_audio, voice_id, target_singer,
                                  key_shift, diffusion_steps, seed, response_format)

    @router.get(f"/{route.key}/singers", summary=f"The singers of the {route.name} checkpoint", name=f"{route.key}_singers",
                responses={200: {"description": "`{\"model\", \"singers\": [{\"name\", \"f0_median\"}]}`: F0 medians "
                                                "in Hz from the checkpoint's training data"},
                           **{code: spec for code, spec in ERROR_RESPONSES.items() if code in (400, 401, 429, 500, 503)}})
    async def singers(request: Request):
        deployment = entry_deployment(route.key)
        return {"model": route.key, "singers": await request.app.state.backend.call(deployment, "singers", route.key)}


for _route in SVC_ROUTES:
    _svc_routes(_route)

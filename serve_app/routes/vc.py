"""Voice conversion routes: Noro, the Vevo family (one entry deployment, a method per route) and Metis."""

from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError

from models.noro.configs import DEFAULT_SIGMA as NORO_SIGMA
from models.noro.configs import DEFAULT_STEPS as NORO_STEPS
from models.noro.configs import SIGMA_RANGE as NORO_SIGMA_RANGE
from models.noro.configs import STEPS_RANGE as NORO_STEPS_RANGE
from models.vevo.orchestration import FM_STEPS
from serve_app.routes.common import (
    AUDIO_RESPONSES, RESPONSE_FORMAT_DOC, ResponseFormat, audio_model_route, check_upload_sizes,
)
from serve_app.voices import VOICE_ERRORS, Reference, reference_from, voice_id_form, voice_reference

router = APIRouter(prefix="/api/vc", tags=["VC"], dependencies=[Depends(check_upload_sizes)],
                   responses=VOICE_ERRORS)  # every route takes voice_id

SEED = Form(None, ge=0, le=2**31 - 1, description="Makes sampling reproducible for the same inputs")
STEPS = Form(FM_STEPS, ge=1, le=128, description="Number of flow-matching steps (1 to 128)")
VOICE_ID = voice_id_form()


@router.post("/noro", responses=AUDIO_RESPONSES, summary="Voice conversion with Noro")
async def noro(
    request: Request,
    source_audio: UploadFile = File(..., description="Source speech: what is said"),
    target_audio: Optional[UploadFile] = File(None, description="Target speaker's speech: the voice to say it in"),
    reference_audio: Optional[UploadFile] = File(None, description="Alias of `target_audio`: send one of the two"),
    voice_id: Optional[str] = voice_id_form("target_audio"),
    inference_steps: int = Form(NORO_STEPS, ge=NORO_STEPS_RANGE[0], le=NORO_STEPS_RANGE[1],
                                description=f"Diffusion (Euler) steps ({NORO_STEPS_RANGE[0]} to {NORO_STEPS_RANGE[1]})"),
    sigma: float = Form(NORO_SIGMA, ge=NORO_SIGMA_RANGE[0], le=NORO_SIGMA_RANGE[1],
                        description="Temperature of the starting noise (0.9 to 1.5)"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    field, target = one_of(target_audio=target_audio, reference_audio=reference_audio, voice_id=voice_id)
    ref = await voice_reference(request, voice_id) if field == "voice_id" else Reference(target)
    field = "target_audio" if field == "voice_id" else field
    return await audio_model_route(request, "noro", "convert",
                                   {"source_audio": (source_audio, "source"), field: (ref.upload, "target")},
                                   dict(inference_steps=inference_steps, sigma=sigma, seed=seed), response_format)


def one_of(**uploads):
    """The one field sent among aliases (field name, value); 422 in FastAPI's shape for none or several."""
    sent = [(name, f) for name, f in uploads.items() if f is not None]
    if len(sent) != 1:
        names = " or ".join(f"`{n}`" for n in uploads)
        raise RequestValidationError([{"type": "missing" if not sent else "value_error",
                                       "loc": ("body", next(iter(uploads))), "msg": f"send exactly one of {names}"}])
    return sent[0]


@router.post("/metis", responses=AUDIO_RESPONSES, summary="Voice conversion with Metis (extension)")
async def metis(
    request: Request,
    source_audio: UploadFile = File(..., description="Source speech: what is said"),
    reference_audio: Optional[UploadFile] = File(None, description="Reference speech: the voice to say it in; or "
                                                                   "send `voice_id`"),
    voice_id: Optional[str] = VOICE_ID,
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    return await _convert(request, "metis_vc", "vc", source_audio, reference_audio, voice_id, response_format,
                          seed=seed)


@router.post("/vevo-timbre", responses=AUDIO_RESPONSES, summary="Convert voice timbre with Vevo (flow matching)")
async def vevo_timbre(
    request: Request,
    source_audio: UploadFile = File(..., description="Source audio"),
    reference_audio: Optional[UploadFile] = File(None, description="Timbre reference; or send `voice_id`"),
    voice_id: Optional[str] = VOICE_ID,
    flow_matching_steps: int = STEPS,
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    return await _convert(request, "vevo_timbre", "timbre", source_audio, reference_audio, voice_id, response_format,
                          flow_matching_steps=flow_matching_steps, seed=seed)


@router.post("/vevo-style", responses=AUDIO_RESPONSES, summary="Convert voice style (accent, emotion, prosody) with Vevo")
async def vevo_style(
    request: Request,
    source_audio: UploadFile = File(..., description="Source audio"),
    reference_audio: Optional[UploadFile] = File(None, description="Style reference; or send `voice_id`"),
    voice_id: Optional[str] = VOICE_ID,
    flow_matching_steps: int = STEPS,
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    return await _convert(request, "vevo_style", "style", source_audio, reference_audio, voice_id, response_format,
                          flow_matching_steps=flow_matching_steps, seed=seed)


@router.post("/vevo-voice", responses=AUDIO_RESPONSES, summary="Full voice conversion (style and timbre) with Vevo")
async def vevo_voice(
    request: Request,
    source_audio: UploadFile = File(..., description="Source audio"),
    reference_audio: Optional[UploadFile] = File(None, description="Voice reference; or send `voice_id`"),
    voice_id: Optional[str] = VOICE_ID,
    mode: Literal["fm", "ar"] = Form("ar", description="`ar`: convert style and timbre; `fm`: timbre only"),
    flow_matching_steps: int = STEPS,
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    return await _convert(request, "vevo_voice", "voice", source_audio, reference_audio, voice_id, response_format,
                          mode=mode,
                          flow_matching_steps=flow_matching_steps, seed=seed)


async def _convert(request: Request, model_key: str, method: str, source: UploadFile, reference: UploadFile | None,
                   voice_id: str | None, response_format: str, **fields):
    ref = await reference_from(request, reference, voice_id)
    return await audio_model_route(request, model_key, method,
                                   {"source_audio": (source, "source"), "reference_audio": (ref.upload, "reference")},
                                   fields, response_format)

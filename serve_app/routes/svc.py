"""Singing voice conversion routes: VevoSing is served; the experimental Amphion SVC recipes answer
503 naming them until built."""

from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from models.vevosing.orchestration import FM_STEPS, USE_SHIFTED_SRC
from serve_app.routes.common import (
    AUDIO_RESPONSES, RESPONSE_FORMAT_DOC, ResponseFormat, audio_model_route, check_upload_sizes, not_built,
)

router = APIRouter(prefix="/api/svc", tags=["SVC"], dependencies=[Depends(check_upload_sizes)])

CONTENT = File(..., description="Source singing audio (melody)")
REFERENCE = File(..., description="Reference voice (timbre)")
SEED = Form(None, ge=0, le=2**31 - 1, description="Makes sampling reproducible for the same inputs")


@router.post("/vevosing", responses=AUDIO_RESPONSES, summary="Singing voice conversion with VevoSing")
async def vevosing(
    request: Request,
    content_audio: UploadFile = CONTENT,
    reference_audio: UploadFile = REFERENCE,
    mode: Literal["fm", "ar"] = Form("fm", description="`fm`: timbre only (flow matching); `ar`: full control "
                                                      "(the AR stage also takes the reference's style)"),
    use_shifted_src: bool = Form(USE_SHIFTED_SRC, description="Shift the source to the reference's key before taking its melody"),
    flow_matching_steps: int = Form(FM_STEPS, ge=1, le=128, description="Number of flow-matching steps (1 to 128)"),
    lyrics: Optional[str] = Form(None, max_length=2000, description="Lyrics for ar mode; transcribed when absent"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    return await audio_model_route(
        request, "vevosing", "generate",
        {"content_audio": (content_audio, "source"), "reference_audio": (reference_audio, "reference")},
        dict(mode=mode, use_shifted_src=use_shifted_src, flow_matching_steps=flow_matching_steps, lyrics=lyrics,
             seed=seed), response_format)


def _experimental(path: str, key: str, name: str):
    @router.post(path, responses=AUDIO_RESPONSES, summary=f"Singing voice conversion with {name} (experimental)",
                 name=key)
    async def route(
        content_audio: UploadFile = CONTENT,
        reference_audio: UploadFile = REFERENCE,
        seed: Optional[int] = SEED,
        response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
    ):
        not_built(key)

    return route


diffcomosvc = _experimental("/diffcomosvc", "diffcomosvc", "DiffComoSVC")
transformersvc = _experimental("/transformersvc", "transformersvc", "TransformerSVC")
vitssvc = _experimental("/vitssvc", "vitssvc", "VitsSVC")
multiplecontentssvc = _experimental("/multiplecontentssvc", "multiplecontentssvc", "MultipleContentsSVC")

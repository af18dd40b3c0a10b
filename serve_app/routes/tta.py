"""Text-to-audio routes. The models behind them are not built yet: each answers 503 naming it."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, Form

from serve_app.routes.common import check_upload_sizes, AUDIO_RESPONSES, RESPONSE_FORMAT_DOC, ResponseFormat, not_built

router = APIRouter(prefix="/api/tta", tags=["TTA"], dependencies=[Depends(check_upload_sizes)])

DESCRIPTION = Form(..., min_length=1, max_length=1000, description="Text description of the desired audio")
SEED = Form(None, ge=0, le=2**31 - 1, description="Makes sampling reproducible for the same inputs")


@router.post("/audioldm", responses=AUDIO_RESPONSES, summary="Audio from text with AudioLDM (latent diffusion)")
async def audioldm(
    text: str = DESCRIPTION,
    num_inference_steps: int = Form(50, ge=10, le=200, description="Diffusion steps"),
    audio_length_in_s: float = Form(5.0, ge=1.0, le=30.0, description="Audio duration (s)"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    not_built("audioldm")


@router.post("/picoaudio", responses=AUDIO_RESPONSES, summary="Audio from text with PicoAudio (lightweight, fast)")
async def picoaudio(
    text: str = DESCRIPTION,
    duration: float = Form(3.0, ge=1.0, le=10.0, description="Audio duration (s)"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    not_built("picoaudio")

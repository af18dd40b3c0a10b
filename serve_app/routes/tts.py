"""Text-to-speech routes. The models behind them are not built yet: each answers 503 naming it."""

from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Depends, File, Form, UploadFile

from serve_app.routes.common import check_upload_sizes, AUDIO_RESPONSES, RESPONSE_FORMAT_DOC, ResponseFormat, not_built

router = APIRouter(prefix="/api/tts", tags=["TTS"], dependencies=[Depends(check_upload_sizes)])

TEXT_MAX = 2000
TEXT = Form(..., min_length=1, max_length=TEXT_MAX, description="Text to synthesize")
SEED = Form(None, ge=0, le=2**31 - 1, description="Makes sampling reproducible for the same inputs")


@router.post("/maskgct", responses=AUDIO_RESPONSES,
             summary="Speech from text with MaskGCT (Masked Generative Codec Transformer), cloning a reference voice")
async def maskgct(
    text: str = TEXT,
    reference_audio: UploadFile = File(..., description="Reference audio for voice cloning (trimmed to what the model uses)"),
    language: str = Form("en", min_length=2, max_length=8, description="Language code of `text`"),
    temperature: float = Form(0.7, gt=0.0, le=2.0, description="Sampling temperature"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    not_built("maskgct")


@router.post("/vevo", responses=AUDIO_RESPONSES, summary="Speech from text with Vevo TTS")
async def vevo(
    text: str = TEXT,
    reference_audio: UploadFile = File(..., description="Reference audio for the voice"),
    mode: Literal["fm", "ar"] = Form(
        "fm", description="`fm`: take only the timbre from the reference; `ar`: also prompt the AR stage with its style"),
    reference_text: Optional[str] = Form(None, max_length=TEXT_MAX,
                                         description="Transcript of the reference (ar mode); transcribed when absent"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    not_built("vevo_tts")


@router.post("/metis", responses=AUDIO_RESPONSES, summary="Speech from text with Metis")
async def metis(
    text: str = TEXT,
    reference_audio: Optional[UploadFile] = File(None, description="Reference for voice style (optional)"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    not_built("metis")


@router.post("/dualcodec-valle", responses=AUDIO_RESPONSES, summary="Speech from text with DualCodec-VALL-E")
async def dualcodec_valle(
    text: str = TEXT,
    reference_audio: UploadFile = File(..., description="Reference audio"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    not_built("dualcodec_valle")

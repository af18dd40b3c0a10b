"""Voice conversion routes. The models behind them are not built yet: each answers 503 naming it."""

from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Depends, File, Form, UploadFile

from serve_app.routes.common import check_upload_sizes, AUDIO_RESPONSES, RESPONSE_FORMAT_DOC, ResponseFormat, not_built

router = APIRouter(prefix="/api/vc", tags=["VC"], dependencies=[Depends(check_upload_sizes)])

SEED = Form(None, ge=0, le=2**31 - 1, description="Makes sampling reproducible for the same inputs")
STEPS = Form(32, ge=1, le=128, description="Number of flow-matching steps (1 to 128)")


@router.post("/noro", responses=AUDIO_RESPONSES, summary="Voice conversion with Noro")
async def noro(
    source_audio: UploadFile = File(..., description="Source speech audio"),
    target_audio: UploadFile = File(..., description="Target voice reference"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    not_built("noro")


@router.post("/vevo-timbre", responses=AUDIO_RESPONSES, summary="Convert voice timbre with Vevo (flow matching)")
async def vevo_timbre(
    source_audio: UploadFile = File(..., description="Source audio"),
    reference_audio: UploadFile = File(..., description="Timbre reference"),
    flow_matching_steps: int = STEPS,
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    not_built("vevo_timbre")


@router.post("/vevo-style", responses=AUDIO_RESPONSES, summary="Convert voice style (accent, emotion, prosody) with Vevo")
async def vevo_style(
    source_audio: UploadFile = File(..., description="Source audio"),
    reference_audio: UploadFile = File(..., description="Style reference"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    not_built("vevo_style")


@router.post("/vevo-voice", responses=AUDIO_RESPONSES, summary="Full voice conversion (style and timbre) with Vevo")
async def vevo_voice(
    source_audio: UploadFile = File(..., description="Source audio"),
    reference_audio: UploadFile = File(..., description="Voice reference"),
    mode: Literal["fm", "ar"] = Form("ar", description="`ar`: convert style and timbre; `fm`: timbre only"),
    flow_matching_steps: int = STEPS,
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    not_built("vevo_voice")

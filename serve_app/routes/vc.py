"""Voice conversion routes: the Vevo family (one entry deployment, a method per route) and Metis are
served; Noro answers 503 naming it until built."""

from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from models.vevo.orchestration import FM_STEPS
from serve_app.routes.common import (
    AUDIO_RESPONSES, RESPONSE_FORMAT_DOC, ResponseFormat, audio_model_route, check_upload_sizes, not_built,
)

router = APIRouter(prefix="/api/vc", tags=["VC"], dependencies=[Depends(check_upload_sizes)])

SEED = Form(None, ge=0, le=2**31 - 1, description="Makes sampling reproducible for the same inputs")
STEPS = Form(FM_STEPS, ge=1, le=128, description="Number of flow-matching steps (1 to 128)")


@router.post("/noro", responses=AUDIO_RESPONSES, summary="Voice conversion with Noro")
async def noro(
    source_audio: UploadFile = File(..., description="Source speech audio"),
    target_audio: UploadFile = File(..., description="Target voice reference"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    not_built("noro")


@router.post("/metis", responses=AUDIO_RESPONSES, summary="Voice conversion with Metis (extension)")
async def metis(
    request: Request,
    source_audio: UploadFile = File(..., description="Source speech: what is said"),
    reference_audio: UploadFile = File(..., description="Reference speech: the voice to say it in"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    return await _convert(request, "metis_vc", "vc", source_audio, reference_audio, response_format, seed=seed)


@router.post("/vevo-timbre", responses=AUDIO_RESPONSES, summary="Convert voice timbre with Vevo (flow matching)")
async def vevo_timbre(
    request: Request,
    source_audio: UploadFile = File(..., description="Source audio"),
    reference_audio: UploadFile = File(..., description="Timbre reference"),
    flow_matching_steps: int = STEPS,
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    return await _convert(request, "vevo_timbre", "timbre", source_audio, reference_audio, response_format,
                          flow_matching_steps=flow_matching_steps, seed=seed)


@router.post("/vevo-style", responses=AUDIO_RESPONSES, summary="Convert voice style (accent, emotion, prosody) with Vevo")
async def vevo_style(
    request: Request,
    source_audio: UploadFile = File(..., description="Source audio"),
    reference_audio: UploadFile = File(..., description="Style reference"),
    flow_matching_steps: int = STEPS,
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    return await _convert(request, "vevo_style", "style", source_audio, reference_audio, response_format,
                          flow_matching_steps=flow_matching_steps, seed=seed)


@router.post("/vevo-voice", responses=AUDIO_RESPONSES, summary="Full voice conversion (style and timbre) with Vevo")
async def vevo_voice(
    request: Request,
    source_audio: UploadFile = File(..., description="Source audio"),
    reference_audio: UploadFile = File(..., description="Voice reference"),
    mode: Literal["fm", "ar"] = Form("ar", description="`ar`: convert style and timbre; `fm`: timbre only"),
    flow_matching_steps: int = STEPS,
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    return await _convert(request, "vevo_voice", "voice", source_audio, reference_audio, response_format, mode=mode,
                          flow_matching_steps=flow_matching_steps, seed=seed)


async def _convert(request: Request, model_key: str, method: str, source: UploadFile, reference: UploadFile,
                   response_format: str, **fields):
    return await audio_model_route(request, model_key, method,
                                   {"source_audio": (source, "source"), "reference_audio": (reference, "reference")},
                                   fields, response_format)

"""Speech enhancement and target speaker extraction (Metis' extension tasks): noisy speech or a
mixture in, one clean voice out, 24 kHz."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from serve_app.routes.common import (
    AUDIO_RESPONSES, RESPONSE_FORMAT_DOC, ResponseFormat, audio_model_route, check_upload_sizes,
)
from serve_app.voices import VOICE_ERRORS, reference_from, voice_id_form

router = APIRouter(prefix="/api", dependencies=[Depends(check_upload_sizes)])

SEED = Form(None, ge=0, le=2**31 - 1, description="Makes sampling reproducible for the same inputs")


@router.post("/se/metis", responses=AUDIO_RESPONSES, tags=["SE"],
             summary="Speech enhancement with Metis (extension): noisy speech in, clean speech out")
async def se_metis(
    request: Request,
    audio: UploadFile = File(..., description="Noisy speech"),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    return await audio_model_route(request, "metis_se", "se", {"audio": (audio, "audio")}, dict(seed=seed),
                                   response_format)


@router.post("/tse/metis", responses={**AUDIO_RESPONSES, **VOICE_ERRORS}, tags=["TSE"],
             summary="Target speaker extraction with Metis (extension): one speaker's speech out of a mixture")
async def tse_metis(
    request: Request,
    audio: UploadFile = File(..., description="The mixture (several speakers, or speech over noise)"),
    reference_audio: Optional[UploadFile] = File(None, description="An enrolment clip of the speaker to extract; or "
                                                                   "send `voice_id`"),
    voice_id: Optional[str] = voice_id_form(),
    seed: Optional[int] = SEED,
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    ref = await reference_from(request, reference_audio, voice_id)
    return await audio_model_route(request, "metis_tse", "tse",
                                   {"audio": (audio, "audio"), "reference_audio": (ref.upload, "reference")},
                                   dict(seed=seed), response_format)

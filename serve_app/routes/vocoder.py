"""Vocoder routes: audio (analysed into the vocoder's own mel) or a .npy mel in, WAV out."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from deployments.vocoder import FAMILY as VOCODERS
from serve_app.routes.common import (
    ServerTiming,
    check_upload_sizes,
    entry_deployment,
    AUDIO_RESPONSES, RESPONSE_FORMAT_DOC, SUBTYPES, ResponseFormat, audio_response, read_audio_or_mel, run_task,
)

#: The generic route's `vocoder_name` values: every vocoder the vocoders family deploys.
VOCODER_NAMES = tuple(name for entry in VOCODERS.entries for name in entry.models)

router = APIRouter(prefix="/api/vocoder", tags=["Vocoder"], dependencies=[Depends(check_upload_sizes)])

AUDIO_DOC = (
    "Audio file (WAV, MP3, FLAC, OGG; analysed into exactly the mel-spectrogram this vocoder was "
    "trained on) or a `.npy` float32 mel array shaped [n_mels, frames] in the vocoder's own mel scale "
    "(100 bands, 24 kHz, hop 256; natural-log magnitude)"
)


async def _vocode(request: Request, name: str, audio: UploadFile, response_format: str):
    deployment = entry_deployment(name)
    timing = ServerTiming()
    spec = await request.app.state.backend.describe(deployment)
    with timing("decode"):
        payload = await read_audio_or_mel(request, audio, "audio", spec["sample_rate"], spec["n_mels"],
                                          spec["hop_length"])
    payload["subtype"] = SUBTYPES[response_format]
    with timing("model"):
        result = await run_task(request, deployment, "vocode", payload)
    timing.add("compute", result.get("compute_s"))
    response = await audio_response(result, f"{name}_output", response_format, timing)
    response.headers["Server-Timing"] = timing.header()
    return response


def _named_vocoder_route(name: str, summary: str):
    """/api/vocoder/<name>: one vocoder, fixed by the path."""

    @router.post(f"/{name}", responses=AUDIO_RESPONSES, summary=summary, name=name)
    async def route(
        request: Request,
        audio: UploadFile = File(..., description=AUDIO_DOC),
        response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
    ):
        return await _vocode(request, name, audio, response_format)

    return route


bigvgan = _named_vocoder_route("bigvgan", "Vocode with BigVGAN (NVIDIA v2, 24 kHz)")
hifigan = _named_vocoder_route("hifigan", "Vocode with HiFi-GAN (Amphion, 24 kHz)")


@router.post("/generic", responses=AUDIO_RESPONSES, summary="Vocode with the named vocoder")
async def generic(
    request: Request,
    audio: UploadFile = File(..., description=AUDIO_DOC + ". For `nsf_hifigan`, F0 is extracted from the audio."),
    vocoder_name: Literal[VOCODER_NAMES] = Form(..., description="Which vocoder to use"),  # type: ignore[valid-type]
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    return await _vocode(request, vocoder_name, audio, response_format)

"""Codec routes: audio -> token JSON (``decisions.md``, "Codec token formats") and back.

The token JSON is validated here, against the deployed model's own codebook sizes, before any model
sees it (400 with a detail naming the rule). Encode answers JSON; decode answers WAV.
"""

from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from serve_app.errors import APIError
from serve_app.routes.common import (
    AUDIO_RESPONSES, ERROR_RESPONSES, RESPONSE_FORMAT_DOC, SUBTYPES, ResponseFormat, ServerTiming, audio_response,
    check_upload_sizes, entry_deployment, read_audio, run_task,
)
from serve_app.tokens import parse_dualcodec_tokens, parse_facodec_tokens

router = APIRouter(prefix="/api/codec", tags=["Codec"], dependencies=[Depends(check_upload_sizes)])

AUDIO = File(..., description="Audio file to encode (WAV, MP3, FLAC, OGG)")
TOKENS_MAX = 1_000_000


def _json_response(example: dict) -> dict:
    return {200: {"description": "Codec tokens", "content": {"application/json": {"example": example}}},
            **ERROR_RESPONSES}


@router.post("/dualcodec/encode", summary="Encode audio into DualCodec tokens",
             responses=_json_response({"tokens": [[1, 2, 3], [4, 5, 6]], "sample_rate": 24000, "frame_rate": 12.5,
                                       "model": "12hz_v1", "num_quantizers": 2}))
async def dualcodec_encode(
    request: Request,
    audio: UploadFile = AUDIO,
    model: Literal["12hz_v1", "25hz_v1"] = Form("12hz_v1", description="DualCodec variant: 12.5 Hz (8 codebooks: "
                                                "semantic + 7 acoustic) or 25 Hz (12: semantic + 11 acoustic)"),
    num_quantizers: Optional[int] = Form(None, ge=1, le=12, description="Codebooks to return (1 = semantic only); "
                                          "default all of the model's (8 for 12hz_v1, 12 for 25hz_v1)"),
):
    deployment, spec = await _codec_spec(request, "dualcodec")
    limit = spec["models"][model]["max_quantizers"]
    if num_quantizers is not None and num_quantizers > limit:
        raise APIError(400, f"num_quantizers: {model} has {limit} codebooks, {num_quantizers} asked")
    timing = ServerTiming()
    with timing("decode"):
        wave = await _read_codec_audio(request, audio, spec, "DualCodec")
    with timing("model"):
        result = await run_task(request, deployment, "encode",
                                {"audio": wave, "model": model, "num_quantizers": num_quantizers})
    response = _json(result, {"tokens": result["tokens"].tolist(), "sample_rate": result["sample_rate"],
                              "frame_rate": result["frame_rate"], "model": result["model"],
                              "num_quantizers": result["num_quantizers"]})
    response.headers["Server-Timing"] = timing.header()
    return response


@router.post("/dualcodec/decode", responses=AUDIO_RESPONSES, summary="Decode DualCodec tokens into audio")
async def dualcodec_decode(
    request: Request,
    tokens: str = Form(..., min_length=2, max_length=TOKENS_MAX,
                       description="JSON array of codebooks (row 0 semantic, rows 1.. acoustic), "
                                   "or the whole encode response"),
    model: Optional[Literal["12hz_v1", "25hz_v1"]] = Form(None, description="DualCodec variant (default: the one "
                                                          "named in the encode response, else 12hz_v1)"),
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    deployment, spec = await _codec_spec(request, "dualcodec")
    # InvalidTokens answers 400 with its detail (serve_app.errors).
    codes, name = parse_dualcodec_tokens(tokens, model, spec["max_seconds"], sizes=spec["models"])
    timing = ServerTiming()
    with timing("model"):
        result = await run_task(request, deployment, "decode",
                                {"tokens": codes, "model": name, "subtype": SUBTYPES[response_format]})
    response = await audio_response(result, "dualcodec_output", response_format, timing)
    response.headers["Server-Timing"] = timing.header()
    return response


async def _codec_spec(request: Request, model_key: str) -> tuple[str, dict]:
    deployment = entry_deployment(model_key)
    return deployment, await request.app.state.backend.describe(deployment)


async def _read_codec_audio(request: Request, audio: UploadFile, spec: dict, name: str):
    """The upload at the codec's rate, within its length limits (400 naming them)."""
    wave = await read_audio(request, audio, "audio", spec["sample_rate"])
    seconds = len(wave) / spec["sample_rate"]
    if seconds > spec["max_seconds"]:
        raise APIError(400, f"audio: {seconds:.1f} s, {name} encodes at most {spec['max_seconds']:g} s per request")
    if len(wave) < spec["min_samples"]:
        raise APIError(400, f"audio: too short for {name} (at least {1000 * spec['min_samples'] / spec['sample_rate']:.0f} ms)")
    return wave


def _json(result: dict, body: dict) -> JSONResponse:
    return JSONResponse(body, headers={"X-Amphion-Weights": result["weights"]})


@router.post("/facodec/encode", summary="Encode audio into FACodec factorized tokens",
             responses=_json_response({"prosody_tokens": [[1, 2]], "content_tokens": [[3, 4], [5, 6]],
                                       "acoustic_tokens": [[7, 8], [9, 10], [11, 12]],
                                       "timbre_tokens": [0.1, -0.2], "sample_rate": 16000, "frame_rate": 80}))
async def facodec_encode(request: Request, audio: UploadFile = AUDIO):
    deployment, spec = await _codec_spec(request, "facodec")
    timing = ServerTiming()
    with timing("decode"):
        wave = await _read_codec_audio(request, audio, spec, "FACodec")
    with timing("model"):
        result = await run_task(request, deployment, "encode", {"audio": wave})
    response = _json(result, {
        "prosody_tokens": result["prosody"].tolist(), "content_tokens": result["content"].tolist(),
        "acoustic_tokens": result["acoustic"].tolist(), "timbre_tokens": result["timbre"].tolist(),
        "sample_rate": result["sample_rate"], "frame_rate": result["frame_rate"],
    })
    response.headers["Server-Timing"] = timing.header()
    return response


@router.post("/facodec/decode", responses=AUDIO_RESPONSES, summary="Decode FACodec factorized tokens into audio")
async def facodec_decode(
    request: Request,
    tokens: str = Form(..., min_length=2, max_length=TOKENS_MAX,
                       description="JSON object as returned by encode (timbre_tokens is a 256-float speaker embedding)"),
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    deployment, spec = await _codec_spec(request, "facodec")
    sizes = set(spec["codebook_size"].values())
    parsed = parse_facodec_tokens(tokens, spec["max_seconds"], codebook_size=min(sizes), timbre_dim=spec["timbre_dim"])
    payload = {"prosody": parsed["prosody_tokens"], "content": parsed["content_tokens"],
               "acoustic": parsed["acoustic_tokens"], "timbre": parsed["timbre_tokens"],
               "subtype": SUBTYPES[response_format]}
    timing = ServerTiming()
    with timing("model"):
        result = await run_task(request, deployment, "decode", payload)
    response = await audio_response(result, "facodec_output", response_format, timing)
    response.headers["Server-Timing"] = timing.header()
    return response

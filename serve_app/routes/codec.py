"""Codec routes. The codecs are not built yet: each route answers 503 naming it."""

from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from serve_app.routes.common import check_upload_sizes, AUDIO_RESPONSES, ERROR_RESPONSES, RESPONSE_FORMAT_DOC, ResponseFormat, not_built

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
    audio: UploadFile = AUDIO,
    model: Literal["12hz_v1", "25hz_v1"] = Form("12hz_v1", description="DualCodec variant"),
):
    not_built("dualcodec")


@router.post("/dualcodec/decode", responses=AUDIO_RESPONSES, summary="Decode DualCodec tokens into audio")
async def dualcodec_decode(
    request: Request,
    tokens: str = Form(..., min_length=2, max_length=TOKENS_MAX,
                       description="JSON array of codebooks (row 0 semantic, rows 1.. acoustic), "
                                   "or the whole encode response"),
    model: Optional[Literal["12hz_v1", "25hz_v1"]] = Form(None, description="DualCodec variant"),
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    parse_dualcodec_tokens(tokens, model, request.app.state.settings.max_content_seconds)
    not_built("dualcodec")


@router.post("/facodec/encode", summary="Encode audio into FACodec factorized tokens",
             responses=_json_response({"prosody_tokens": [[1, 2]], "content_tokens": [[3, 4], [5, 6]],
                                       "acoustic_tokens": [[7, 8], [9, 10], [11, 12]],
                                       "timbre_tokens": [0.1, -0.2], "sample_rate": 16000, "frame_rate": 80}))
async def facodec_encode(audio: UploadFile = AUDIO):
    not_built("facodec")


@router.post("/facodec/decode", responses=AUDIO_RESPONSES, summary="Decode FACodec factorized tokens into audio")
async def facodec_decode(
    request: Request,
    tokens: str = Form(..., min_length=2, max_length=TOKENS_MAX,
                       description="JSON object as returned by encode (timbre_tokens is a 256-float speaker embedding)"),
    response_format: ResponseFormat = Form("wav", description=RESPONSE_FORMAT_DOC),
):
    parse_facodec_tokens(tokens, request.app.state.settings.max_content_seconds)
    not_built("facodec")

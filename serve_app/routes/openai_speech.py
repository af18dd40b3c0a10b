"""OpenAI-compatible speech: ``POST /v1/audio/speech`` and ``GET /v1/models``.

The request and response follow OpenAI's audio API, so its clients (the ``openai`` package, or
anything written against it) work by changing the base URL: ``model`` is one of our TTS models,
``voice`` a saved voice's id (``POST /api/voices``) or a built-in voice, ``response_format`` one of
OpenAI's (default ``mp3``, as theirs), ``speed`` a real time-stretch (pitch kept, FFmpeg's atempo).
Authentication: ``Authorization: Bearer <key>`` as well as ``X-API-Key``. Errors come in OpenAI's
shape (``serve_app.openai_errors``). A request runs the same deployment call as the model's own
``/api/tts/...`` route, with that route's defaults for everything OpenAI's request cannot say.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, Optional

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from deployments import topology
from models import registry
from serve_app import formats
from serve_app.errors import APIError
from serve_app.openai_errors import ERROR_SCHEMA
from serve_app.routes.common import (
    ServerTiming, entry_deployment, read_audio, reference_prompt_key, run_task, with_prompt_timing,
)
from serve_app.routes.tts import TEXT_MAX
from serve_app.voices import BUILTIN_VOICES, voice_reference

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])
#: Routes that run no model (no task id, no body limit).
SERVICE_PATHS = ("/v1/models",)

#: OpenAI's names for the formats; each is one of ours (`opus` is Ogg Opus, as OpenAI's).
OpenAIFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
SPEED_MIN, SPEED_MAX = formats.SPEED_RANGE


@dataclass(frozen=True)
class SpeechModel:
    """One TTS model as OpenAI's API names it: the registry key, the entry method its route calls,
    and the payload fields OpenAI's request has no place for (the route's defaults)."""

    key: str
    method: str
    fixed: dict = field(default_factory=dict)


#: ``model`` -> how to run it. Language: MaskGCT's route defaults to English (it has no detection of
#: its own when a transcript is given); the others detect it per text.
SPEECH_MODELS = {
    "maskgct": SpeechModel("maskgct", "synthesize", {"language": "en"}),
    "vevo": SpeechModel("vevo_tts", "tts", {"language": "auto"}),
    "metis": SpeechModel("metis", "tts", {"language": "auto"}),
    "dualcodec-valle": SpeechModel("dualcodec_valle", "synthesize"),
}

#: When the ingress process started: ``created`` of the models it lists.
STARTED = int(time.time())


class SpeechRequest(BaseModel):
    """OpenAI's ``/v1/audio/speech`` body. Fields OpenAI added that we have no use for
    (``instructions``, ``stream_format``) are accepted and ignored, so their clients keep working."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(..., description=f"A TTS model: {', '.join(f'`{m}`' for m in SPEECH_MODELS)}")
    input: str = Field(..., min_length=1, max_length=TEXT_MAX, description="The text to speak")
    voice: str = Field(..., min_length=1, max_length=64,
                       description="A saved voice's id (`POST /api/voices`) or a built-in voice: "
                                   + ", ".join(f"`{v}`" for v in BUILTIN_VOICES))
    response_format: OpenAIFormat = Field("mp3", description="Audio format (OpenAI's default: mp3); `pcm` is "
                                                             "raw 16-bit little-endian at X-Sample-Rate")
    speed: float = Field(1.0, ge=SPEED_MIN, le=SPEED_MAX,
                         description="Playback speed: a time-stretch that keeps the pitch (FFmpeg's atempo)")
    instructions: Optional[str] = Field(None, max_length=4096, description="Accepted for compatibility; ignored")
    # An extension (OpenAI's clients send it with extra_body={"seed": ...}): reproducible sampling.
    seed: Optional[int] = Field(None, ge=0, le=2**31 - 1,
                                description="Not in OpenAI's API: makes sampling reproducible for the same inputs")


def _openai_errors(*codes: int) -> dict:
    return {code: {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
            for code, text in ((400, "Invalid request"), (401, "Missing or invalid API key"),
                               (404, "Unknown model or voice"), (408, "The body did not arrive within body_timeout_s"),
                               (411, "No Content-Length (where the server requires one)"),
                               (413, "Request body too large"),
                               (422, "A field is missing or invalid"), (429, "Rate limit exceeded; see Retry-After"),
                               (500, "Internal error"), (503, "The model is not available"))
            if code in codes}


SPEECH_RESPONSES = {
    200: {"description": "The speech, in `response_format`",
          "content": {f.media_type: {"schema": {"type": "string", "format": "binary"}}
                      for f in formats.FORMATS.values()}},
    **_openai_errors(400, 401, 404, 408, 411, 413, 422, 429, 500, 503),
}


def speech_model(name: str) -> SpeechModel:
    model = SPEECH_MODELS.get(name)
    if model is None or topology.entry_for(model.key) is None:
        raise APIError(404, f"model {name!r} does not exist; see GET /v1/models")
    return model


@router.post("/audio/speech", responses=SPEECH_RESPONSES, summary="Speech from text (OpenAI's audio API)")
async def speech(request: Request, body: SpeechRequest):
    model = speech_model(body.model)
    deployment = entry_deployment(model.key)
    spec = await request.app.state.backend.describe(deployment)
    timing = ServerTiming()
    reference = await voice_reference(request, body.voice)
    with timing("decode"):
        audio = await read_audio(request, reference.upload, "reference_audio", spec["sample_rate"])
        key = await reference_prompt_key({"reference_audio": (reference.upload, "reference")},
                                         {"reference": audio}, spec["sample_rate"])
    payload = {**model.fixed, "text": body.input, "reference": audio, "reference_text": reference.text, **key,
               "seed": body.seed,
               "subtype": formats.deployment_subtype(body.response_format, body.speed)}
    with timing("model"):
        result = await run_task(request, deployment, model.method, payload)
    timing.add("compute", result.get("compute_s"))
    with timing("encode"):
        encoded = await formats.transcode(result["wav"], result["sample_rate"], body.response_format, body.speed)
    return Response(content=encoded.data, media_type=encoded.media_type, headers={
        "X-Sample-Rate": str(encoded.sample_rate),
        "X-Audio-Duration": f"{result['duration'] / body.speed:.3f}",   # the stretch keeps 1/speed within ~2 %
        "X-Amphion-Weights": result["weights"],
        "Content-Disposition": f'attachment; filename="{encoded.filename("speech")}"',
        "Server-Timing": with_prompt_timing(timing.header(), result),
    })


@router.get("/models", responses=_openai_errors(401, 429), summary="The TTS models (OpenAI's model list)")
async def models():
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": STARTED, "owned_by": "amphion",
         "description": registry.get(m.key).display_name}
        for name, m in SPEECH_MODELS.items() if topology.entry_for(m.key) is not None]}

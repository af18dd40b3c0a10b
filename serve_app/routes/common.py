"""Pieces every model route shares: OpenAPI response docs, upload reading, audio responses, 503s."""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from typing import Callable, Literal

from fastapi import Request, UploadFile
from fastapi.responses import Response
from starlette.datastructures import UploadFile as StarletteUploadFile

from deployments import topology
from deployments.progress import ProgressReporter
from models import registry
from serve_app.audio_io import decode_audio, load_npy_mel, sniff_format
from serve_app.errors import APIError

ResponseFormat = Literal["wav", "wav_float"]
RESPONSE_FORMAT_DOC = "WAV sample format: `wav` = 16-bit PCM (default), `wav_float` = 32-bit float"
SUBTYPES = {"wav": "PCM_16", "wav_float": "FLOAT"}

# Upload fields and which size limit applies to each (decisions: reference audio 50 MB, other audio 100 MB).
REFERENCE_FIELDS = ("reference_audio", "target_audio")
CONTENT_FIELDS = ("content_audio", "source_audio", "audio")

_ERRORS = {
    400: "Invalid input: undecodable or empty audio, bad tokens, invalid X-Task-ID",
    401: "Missing or invalid API key",
    408: "The request body did not arrive within body_timeout_s",
    411: "No Content-Length header (where the server requires one: require_content_length)",
    413: "Upload larger than the field's limit",
    415: "Upload is not WAV, MP3, FLAC or OGG (or a .npy mel where accepted)",
    422: "A field is missing or out of range (FastAPI's validation list)",
    429: "Rate limit exceeded; see Retry-After",
    500: "Internal error; the detail carries a request id",
    503: "The model is not deployed, not loaded, or has no weights",
}
_ERROR_SCHEMA = {"type": "object", "properties": {"detail": {"type": "string"}}}
ERROR_RESPONSES = {
    code: {"description": text, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    for code, text in _ERRORS.items() if code != 422
}

_AUDIO_HEADERS = {
    "X-Task-ID": {"description": "Task id; follow progress on /ws/progress/{task_id}", "schema": {"type": "string"}},
    "X-Sample-Rate": {"description": "Sample rate of the returned audio (Hz)", "schema": {"type": "integer"}},
    "X-Audio-Duration": {"description": "Duration of the returned audio (s)", "schema": {"type": "number"}},
    "X-Amphion-Weights": {"description": "`pretrained` or `tiny` (seeded random weights)", "schema": {"type": "string"}},
}
AUDIO_RESPONSES = {
    200: {
        "description": "The generated audio as a WAV file at the model's native sample rate",
        "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
        "headers": _AUDIO_HEADERS,
    },
    **ERROR_RESPONSES,
}


class ServerTiming:
    """Collects stage durations for the `Server-Timing` response header (ms), which browsers'
    dev tools and `curl -v` show: where a request's time went, without server access."""

    def __init__(self):
        self.stages: list[tuple[str, float]] = []

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages.append((stage, time.perf_counter() - start))

    def add(self, stage: str, seconds: float | None) -> None:
        if seconds is not None:
            self.stages.append((stage, seconds))

    def header(self) -> str:
        return ", ".join(f"{name};dur={seconds * 1000:.1f}" for name, seconds in self.stages)


def field_limit(settings, field: str) -> int:
    return settings.reference_bytes() if field in REFERENCE_FIELDS else settings.content_bytes()


def field_seconds(settings, field: str) -> tuple[float, bool]:
    """(max seconds, trim instead of refuse) for an audio field."""
    if field in REFERENCE_FIELDS:
        return settings.max_reference_seconds, True
    return settings.max_content_seconds, False


def check_size(settings, upload: UploadFile, field: str) -> None:
    limit = field_limit(settings, field)
    if upload.size is not None and upload.size > limit:
        raise APIError(413, f"{field}: file is larger than the {limit // (1024 * 1024)} MB allowed")


async def check_upload_sizes(request: Request) -> None:
    """Router dependency: every upload field within its own limit (413), on every route, built or not.

    FastAPI has parsed (and cached) the form by the time dependencies run; files are spooled to disk.
    """
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return
    settings = request.app.state.settings
    form = await request.form()
    for name, value in form.multi_items():
        if isinstance(value, StarletteUploadFile) and name in REFERENCE_FIELDS + CONTENT_FIELDS:
            check_size(settings, value, name)


async def read_audio(request: Request, upload: UploadFile, field: str, sample_rate: int):
    """Decoded mono float32 audio at `sample_rate`, checked against the field's limits."""
    settings = request.app.state.settings
    check_size(settings, upload, field)
    max_seconds, trim = field_seconds(settings, field)
    upload.file.seek(0)
    return await asyncio.to_thread(
        decode_audio, upload.file, field=field, target_sr=sample_rate, max_seconds=max_seconds, trim=trim
    )


async def read_audio_or_mel(request: Request, upload: UploadFile, field: str, sample_rate: int,
                            n_mels: int, hop_length: int) -> dict:
    """A vocoder input: {"audio": wave} for an audio file, {"mel": [n_mels, frames]} for a .npy array."""
    settings = request.app.state.settings
    check_size(settings, upload, field)
    upload.file.seek(0)
    head = upload.file.read(64)
    upload.file.seek(0)
    if sniff_format(head) == "npy":
        max_frames = int(settings.max_content_seconds * sample_rate / hop_length)
        mel = await asyncio.to_thread(load_npy_mel, upload.file, field=field, n_mels=n_mels, max_frames=max_frames)
        return {"mel": mel}
    return {"audio": await read_audio(request, upload, field, sample_rate)}


def not_built(model_key: str):
    model = registry.get(model_key)
    raise APIError(
        503,
        f"{model.display_name} is not available: its implementation is not part of this release yet",
    )


def entry_deployment(model_key: str) -> str:
    """The deployment a model's routes call (its family's entry); 503 when the model is not built."""
    name = topology.entry_for(model_key)
    if name is None:
        not_built(model_key)
    return name


def task_progress(request: Request) -> ProgressReporter:
    return ProgressReporter(request.app.state.store, request.scope.get("state", {}).get("task_id"))


def audio_response(result: dict, filename: str) -> Response:
    return Response(
        content=result["wav"],
        media_type="audio/wav",
        headers={
            "X-Sample-Rate": str(result["sample_rate"]),
            "X-Audio-Duration": f"{result['duration']:.3f}",
            "X-Amphion-Weights": result["weights"],
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


async def run_task(request: Request, deployment: str, method: str, payload: dict) -> dict:
    """Call a model deployment for this request's task, publishing queued/completed/failed around it."""
    progress = task_progress(request)
    progress.queued()
    payload = {**payload, "task_id": progress.task_id}
    try:
        result = await request.app.state.backend.call(deployment, method, payload)
    except Exception as exc:
        progress.failed(getattr(exc, "detail", None) or "the model failed; see the server log")
        raise
    progress.completed()
    return result


async def audio_model_route(request: Request, model_key: str, method: str, uploads: dict[str, tuple[UploadFile, str]],
                            fields: dict, response_format: str,
                            headers_from: Callable[[dict], dict[str, str]] | None = None) -> Response:
    """The common shape of a generating route: decode each upload (form field -> (file, payload key))
    at the model's rate, call ``method`` on the model's pipeline deployment with them and ``fields``,
    answer the WAV with timings (and ``headers_from(result)``: what a model says about its answer)."""
    deployment = entry_deployment(model_key)
    spec = await request.app.state.backend.describe(deployment)
    timing = ServerTiming()
    payload = dict(fields)
    with timing("decode"):
        for field, (upload, key) in uploads.items():
            payload[key] = await read_audio(request, upload, field, spec["sample_rate"])
    payload["subtype"] = SUBTYPES[response_format]
    with timing("model"):
        result = await run_task(request, deployment, method, payload)
    timing.add("compute", result.get("compute_s"))
    response = audio_response(result, f"{model_key}_output.wav")
    response.headers["Server-Timing"] = timing.header()
    if headers_from is not None:
        response.headers.update(headers_from(result))
    return response

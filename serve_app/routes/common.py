"""Pieces every model route shares: OpenAPI response docs, upload reading, audio responses, 503s."""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager, nullcontext
from typing import Callable

from fastapi import Request, UploadFile
from fastapi.responses import Response
from starlette.datastructures import UploadFile as StarletteUploadFile

from deployments import topology
from deployments.progress import ProgressReporter
from models import registry
from models.core.prompt_cache import prompt_key
from serve_app import formats, streaming
from serve_app.audio_io import decode_audio, load_npy_mel, sniff_format
from serve_app.errors import APIError
from serve_app.formats import RESPONSE_FORMAT_DOC, ResponseFormat  # noqa: F401  (the routes' response_format)

#: response_format -> the WAV sample format a deployment is asked for (serve_app.formats re-encodes
#: what is not a WAV in the ingress).
SUBTYPES = {name: formats.deployment_subtype(name) for name in formats.FORMATS}
STREAM_DOC = streaming.STREAM_DOC

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
    "X-Audio-Duration": {"description": "Duration of the returned audio (s); absent from a stream",
                         "schema": {"type": "number"}},
    "X-Amphion-Weights": {"description": "`pretrained` or `tiny` (seeded random weights)", "schema": {"type": "string"}},
}
AUDIO_RESPONSES = {
    200: {
        "description": "The generated audio at the model's native sample rate (a codec that does not take that "
                       "rate gets 48 kHz: see X-Sample-Rate), in the `response_format` asked for: WAV by default",
        "content": {media: {"schema": {"type": "string", "format": "binary"}}
                    for media in dict.fromkeys(f.media_type for f in formats.FORMATS.values())},
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


async def audio_response(result: dict, stem: str, response_format: str = formats.DEFAULT_FORMAT,
                         timing: ServerTiming | None = None) -> Response:
    """A deployment's answer (asked for with ``SUBTYPES[response_format]``) as ``response_format``:
    encoded in a worker thread unless it is the WAV asked for; file name ``<stem>.<extension>``."""
    with timing("encode") if timing is not None else nullcontext():
        encoded = await formats.transcode(result["wav"], result["sample_rate"], response_format)
    return Response(
        content=encoded.data,
        media_type=encoded.media_type,
        headers={
            "X-Sample-Rate": str(encoded.sample_rate),
            "X-Audio-Duration": f"{result['duration']:.3f}",
            "X-Amphion-Weights": result["weights"],
            "Content-Disposition": f'attachment; filename="{encoded.filename(stem)}"',
        },
    )


async def stream_speech(request: Request, deployment: str, method: str, payload: dict, response_format: str,
                        timing: ServerTiming, stem: str) -> Response:
    """A TTS payload answered sentence by sentence (``stream=true``; ``serve_app.streaming``)."""
    backend = request.app.state.backend
    return await streaming.stream_sentences(lambda p: backend.call(deployment, method, p), payload,
                                            response_format, task_progress(request), timing, stem)


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
                            headers_from: Callable[[dict], dict[str, str]] | None = None,
                            stream: bool = False) -> Response:
    """The common shape of a generating route: decode each upload (form field -> (file, payload key))
    at the model's rate, call ``method`` on the model's pipeline deployment with them and ``fields``,
    answer the audio in ``response_format`` with timings (and ``headers_from(result)``: what a model
    says about its answer). ``stream`` (TTS): sentence by sentence, see :func:`stream_speech`."""
    if stream:
        streaming.check_streamable(response_format)   # 422 before any upload is decoded
    deployment = entry_deployment(model_key)
    spec = await request.app.state.backend.describe(deployment)
    timing = ServerTiming()
    payload = dict(fields)
    with timing("decode"):
        for field, (upload, key) in uploads.items():
            payload[key] = await read_audio(request, upload, field, spec["sample_rate"])
        payload.update(await reference_prompt_key(uploads, payload, spec["sample_rate"]))
    payload["subtype"] = SUBTYPES[response_format]
    if stream:
        return await stream_speech(request, deployment, method, payload, response_format, timing,
                                   f"{model_key}_output")
    with timing("model"):
        result = await run_task(request, deployment, method, payload)
    timing.add("compute", result.get("compute_s"))
    response = await audio_response(result, f"{model_key}_output", response_format, timing)
    response.headers["Server-Timing"] = with_prompt_timing(timing.header(), result)
    if headers_from is not None:
        response.headers.update(headers_from(result))
    return response


async def reference_prompt_key(uploads: dict[str, tuple[UploadFile, str]], payload: dict, sample_rate: int) -> dict:
    """``{"prompt_key": ...}`` naming the decoded reference among ``uploads`` (field -> (file, payload
    key)), for the deployments' cache of prompt encodings (``models.core.prompt_cache``); {} without one.
    Named by its samples, so a saved voice, the same file uploaded again and each sentence of a
    stream share one name."""
    for field, (_, key) in uploads.items():
        if field in REFERENCE_FIELDS and payload.get(key) is not None:
            return {"prompt_key": await asyncio.to_thread(prompt_key, payload[key], sample_rate)}
    return {}


def with_prompt_timing(header: str, result: dict) -> str:
    """``header`` plus a ``prompt`` entry when the model reports its kept prompt encodings: desc ``hit``
    (every encoding came from the cache: the prompt encoders did not run), ``miss`` (all computed) or
    ``partial``; dur = the time spent computing them."""
    report = result.get("prompt")
    if not report:
        return header
    hits, misses = len(report.get("hits", ())), len(report.get("misses", ()))
    desc = "hit" if not misses else "miss" if not hits else "partial"
    entry = f'prompt;desc="{desc}";dur={float(report.get("seconds", 0.0)) * 1000:.1f}'
    return f"{header}, {entry}" if header else entry

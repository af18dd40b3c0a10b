"""Streamed TTS answers (``stream=true``): the text is split into sentences, the model speaks them
one after the other through the same deployment call a whole request makes, and each sentence's
audio is sent as soon as it is ready (chunked transfer), so the first audio arrives after one
sentence's compute, not the whole text's.

Contract (also in the routes' OpenAPI text, :data:`STREAM_DOC`):

* Formats: ``pcm`` (raw 16-bit little-endian) or ``wav`` (a header whose sizes are 0xFFFFFFFF,
  "unknown", then 16-bit frames); anything else answers 422 before any work.
* Every sentence gets the request's payload (the same reference audio, so the deployments' prompt
  caches hit from the second sentence on) with its own text; sentence ``i`` is sampled with seed
  ``seed + i``, so a streamed answer is reproducible, and a one-sentence stream equals the whole
  answer. A ``target_len`` is shared out in proportion to the sentences' UTF-8 lengths.
* The first sentence is computed before the response starts: its failure is an ordinary error
  response (4xx/5xx, JSON). Once audio has been sent the status cannot change: a later failure is
  logged, the task's progress says ``failed``, and the transfer is cut off without its final
  chunk, so that clients see a broken download rather than a short, apparently complete one.
* Progress: ``queued``, the deployments' own steps, a ``sentence`` step after each sentence is
  sent, ``completed`` after the last one. A client that hangs up stops the remaining sentences.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from serve_app import formats
from serve_app.sentences import split_sentences

__all__ = ["STREAM_DOC", "StreamBroken", "check_streamable", "sentence_payloads", "stream_sentences"]

log = logging.getLogger("amphion.ingress")

#: Seeds stay within the routes' `seed` range (0 .. 2**31 - 1).
SEED_MODULUS = 2 ** 31

STREAM_DOC = (
    "`true`: split `text` into sentences (at `.`, `!`, `?` and `。`, `！`, `？`; very short ones stay with a "
    "neighbour) and send each sentence's audio as soon as it is ready, with chunked transfer: the first audio "
    "comes after about one sentence's compute. `response_format` must be `pcm` (raw 16-bit little-endian "
    "frames) or `wav` (a header with open-ended sizes, then 16-bit frames); others answer 422. Sentence i is "
    "sampled with `seed + i`; `target_len` is shared out by the sentences' lengths. No `X-Audio-Duration` "
    "(the headers precede the audio). An error after the first audio cannot change the status: the transfer "
    "is cut off (no final chunk) and the task's progress says `failed`"
)


class StreamBroken(RuntimeError):
    """A sentence after the first failed: the response is already under way, so it is cut off."""


def check_streamable(response_format: str) -> None:
    """422 in FastAPI's validation shape unless ``response_format`` can be streamed."""
    if response_format not in formats.STREAM_FORMATS:
        allowed = " or ".join(f"`{name}`" for name in formats.STREAM_FORMATS)
        raise RequestValidationError([{
            "type": "value_error", "loc": ("body", "response_format"), "input": response_format,
            "msg": f"stream=true sends {allowed}; `{response_format}` cannot be streamed (ask without stream)"}])


def sentence_payloads(payload: dict, sentences: list[str]) -> list[dict]:
    """The deployment payload of each sentence: its text, seed ``seed + i``, its share of ``target_len``."""
    sizes = [len(s.encode()) for s in sentences]
    total = sum(sizes)
    out = []
    for i, (sentence, size) in enumerate(zip(sentences, sizes)):
        p = {**payload, "text": sentence}
        if payload.get("seed") is not None:
            p["seed"] = (payload["seed"] + i) % SEED_MODULUS
        if payload.get("target_len") is not None:
            p["target_len"] = payload["target_len"] * size / total
        out.append(p)
    return out


def _failure_detail(exc: BaseException) -> str:
    return getattr(exc, "detail", None) or "the model failed; see the server log"


async def _frames(result: dict) -> bytes:
    wave, rate = await asyncio.to_thread(formats.decode_wav, result["wav"])
    return await asyncio.to_thread(formats.pcm16, wave, rate)


async def stream_sentences(call: Callable[[dict], Awaitable[dict]], payload: dict, response_format: str,
                           progress, timing, stem: str) -> StreamingResponse:
    """The streamed answer to a TTS ``payload`` (its ``text`` split here). ``call(payload)`` runs the
    model on one sentence (the route's deployment call); ``progress`` is the task's
    ``ProgressReporter``; ``timing`` the request's ``ServerTiming`` (sent with the headers, so it
    covers decoding and the first sentence)."""
    check_streamable(response_format)
    sentences = split_sentences(payload["text"]) or [payload["text"]]
    payloads = [{**p, "subtype": "FLOAT", "task_id": progress.task_id} for p in sentence_payloads(payload, sentences)]
    total = len(payloads)
    progress.queued()
    try:
        with timing("first_audio"):
            first = await call(payloads[0])
            first_chunk = formats.stream_header(response_format, first["sample_rate"]) + await _frames(first)
    except Exception as exc:
        progress.failed(_failure_detail(exc))
        raise
    sample_rate = first["sample_rate"]

    async def body():
        finished = False
        try:
            yield first_chunk
            progress.step("sentence", 1, total)
            for index in range(1, total):
                try:
                    result = await call(payloads[index])
                    if result["sample_rate"] != sample_rate:
                        raise RuntimeError(f"sentence {index + 1} came at {result['sample_rate']} Hz, not {sample_rate}")
                    chunk = await _frames(result)
                except Exception as exc:
                    finished = True
                    progress.failed(_failure_detail(exc))
                    log.warning("task %s: sentence %d of %d failed after audio was sent; cutting the stream off",
                                progress.task_id, index + 1, total)
                    raise StreamBroken(f"sentence {index + 1} of {total} failed") from exc
                yield chunk
                progress.step("sentence", index + 1, total)
            finished = True
            progress.completed()
        finally:
            if not finished:          # the client hung up (the body was cancelled or closed early)
                progress.failed("the client closed the stream")

    headers = {
        "X-Sample-Rate": str(sample_rate),
        "X-Amphion-Weights": first["weights"],
        "X-Amphion-Sentences": str(total),
        "Content-Disposition": f'attachment; filename="{stem}.{formats.FORMATS[response_format].extension}"',
        "Server-Timing": timing.header(),
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",    # reverse proxies (nginx) would otherwise buffer the chunks
    }
    return StreamingResponse(body(), media_type=formats.FORMATS[response_format].media_type, headers=headers)

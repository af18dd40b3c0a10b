"""Whisper timestamp tokens -> timed segments, and the MaskGCT demo's prompt trimming rule.

Whisper, asked for timestamps, writes ``<|t0|> text <|t1|><|t1|> text <|t2|> ...``: every segment is
opened and closed by a timestamp token (ids from ``timestamp_begin`` upwards, 0.02 s apart). Parsing
the ids ourselves keeps us independent of how a given transformers release decodes offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

#: Seconds per timestamp token step (Whisper's 20 ms resolution).
TIME_PRECISION = 0.02


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


def parse_segments(token_ids: Sequence[int], timestamp_begin: int, is_text: Callable[[int], bool],
                   decode: Callable[[list[int]], str]) -> list[Segment]:
    """Timed segments of one generated sequence. Text tokens outside a ``<|start|> ... <|end|>`` pair
    (output without timestamps, or a last segment the model never closed) become a segment ending at
    the last timestamp seen (or +inf), so no recognised text is lost."""
    segments: list[Segment] = []
    start: float | None = None
    last_time = 0.0
    pending: list[int] = []

    def close(end: float) -> None:
        text = decode(pending).strip()
        if text:
            segments.append(Segment(start if start is not None else last_time, end, text))
        pending.clear()

    for token in token_ids:
        if token >= timestamp_begin:
            time = (token - timestamp_begin) * TIME_PRECISION
            if start is None:
                start = time
            else:
                close(time)
                start = None
            last_time = time
        elif is_text(token):
            pending.append(token)
    if pending:
        close(float("inf"))
    return segments


def trim_at_segment(segments: Sequence[Segment], min_seconds: float) -> tuple[float | None, str]:
    """The MaskGCT demo's prompt rule: keep whole segments from the start until one ends at or after
    ``min_seconds``; return (cut time in seconds, their text). The cut is None (keep all the audio)
    when no segment reaches ``min_seconds`` with a finite end."""
    kept: list[str] = []
    for seg in segments:
        kept.append(seg.text)
        if seg.end != float("inf") and seg.end >= min_seconds:
            return seg.end, " ".join(kept)
    return None, " ".join(s.text for s in segments)

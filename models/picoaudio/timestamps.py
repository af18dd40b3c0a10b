"""PicoAudio's timestamp front end: text -> which events sound when -> the onset matrix.

Two written forms (``parse_text`` tells them apart by ``"__"``):

* the reference's structured form ``dog_barking__0.5-2.0_4.0-5.0--cat_meowing__6.0-7.5`` (event
  names with spaces are accepted too; a segment with no ``__`` is an event spanning the clip);
* a caption naming events and times: "a dog barks at 0.5-2.0 and 4-5 seconds, a cat meows at
  6-7.5"; an event named without times spans the whole clip.

The onset matrix is ``[32, 256]``: one row per event class (:data:`~models.picoaudio.events.EVENT_CLASSES`
order, 18 used), 25 frames per second (256 frames = 10.24 s), 1 where the event sounds.
:func:`decode_timestamps` is the reference's ``decode_data`` exactly (its quirks included);
:func:`onset_matrix` builds the same matrix from checked events (differences: README).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.picoaudio.events import CAPTION_WORDS, EVENT_CLASSES, canonical_event, event_id

__all__ = [
    "FRAMES",
    "FRAMES_PER_SECOND",
    "MATRIX_ROWS",
    "MAX_SECONDS",
    "PicoAudioInputError",
    "TimedEvent",
    "TimestampError",
    "UnknownEventError",
    "decode_timestamps",
    "event_text",
    "onset_matrix",
    "parse_caption",
    "parse_structured",
    "parse_text",
]

MATRIX_ROWS = 32
FRAMES = 256
FRAMES_PER_SECOND = 25
#: What the model generates: 256 latent frames of 40 ms.
MAX_SECONDS = FRAMES / FRAMES_PER_SECOND


class PicoAudioInputError(ValueError):
    """A request PicoAudio cannot serve (bad text, times or settings); the message says why."""


class UnknownEventError(PicoAudioInputError):
    """The text names no event class the model was trained on (or an unknown one, in the
    structured form). The message lists the classes; so does :attr:`known`."""

    def __init__(self, message: str) -> None:
        self.known = EVENT_CLASSES
        super().__init__(f"{message}; PicoAudio knows these event classes: {', '.join(EVENT_CLASSES)}")


class TimestampError(PicoAudioInputError):
    """Times that cannot be read, or lie outside the clip."""


@dataclass(frozen=True)
class TimedEvent:
    """One event class and when it sounds: ``(start, end)`` seconds; no intervals = the whole clip."""

    name: str
    intervals: tuple[tuple[float, float], ...] = ()


def _frame(seconds: float) -> int:
    # The reference writes ``int(float(t) * 250 / 10)``; the same float operations in the same
    # order truncate the same way (``t * 25`` rounds differently for some t).
    return int(seconds * 250 / 10)


# ---------------------------------------------------------------------------------------------
# the reference's decoder


def decode_timestamps(onset_str: str) -> tuple[np.ndarray, str]:
    """The reference's ``Text_Onset_2_Audio_Dataset.decode_data``: a structured timestamp string
    -> (onset matrix ``[32, 256]`` float32, the event string for CLAP).

    Exactly its arithmetic: frames are ``int(t * 250 / 10)`` (truncated), the end frame is
    exclusive, and an interval whose end frame is past 255 stops that event's remaining intervals.
    The event string joins the events' names with ``" and "`` in the string's order. Names are
    matched ignoring case and spaces/underscores; an unknown one is an :class:`UnknownEventError`.
    """
    matrix = np.zeros((MATRIX_ROWS, FRAMES), dtype=np.float32)
    names = []
    for segment in onset_str.split("--"):
        parts = segment.split("__")
        if len(parts) != 2:
            raise TimestampError(f"{segment!r}: expected 'event__start-end_start-end'")
        name = _known(parts[0])
        names.append(name)
        for start, end in _intervals(parts[1], segment):
            end_frame = _frame(end)
            if end_frame > FRAMES - 1:
                break
            matrix[event_id(name), _frame(start):end_frame] = 1.0
    return matrix, " and ".join(names)


# ---------------------------------------------------------------------------------------------
# parsing


def parse_text(text: str) -> list[TimedEvent]:
    """The events of either written form (structured when the text contains ``"__"``)."""
    if not isinstance(text, str) or not text.strip():
        raise PicoAudioInputError("text is empty; name at least one event, e.g. 'a dog barks at 1-2.5'")
    return parse_structured(text) if "__" in text else parse_caption(text)


def parse_structured(text: str) -> list[TimedEvent]:
    """``event__s-e_s-e--event2__s-e`` (a segment without ``__`` spans the clip) -> events in order
    of first appearance, a repeated event's intervals merged."""
    found: dict[str, list[tuple[float, float]]] = {}
    whole: set[str] = set()
    for segment in text.strip().split("--"):
        parts = segment.split("__")
        if len(parts) > 2 or not parts[0].strip():
            raise TimestampError(f"{segment!r}: expected 'event__start-end_start-end'")
        name = _known(parts[0])
        spans = found.setdefault(name, [])
        if len(parts) == 1 or not parts[1].strip():
            whole.add(name)
        else:
            spans.extend(_intervals(parts[1], segment))
    return [TimedEvent(name, () if name in whole else tuple(spans)) for name, spans in found.items()]


_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_UNIT = r"(?:\s*(?:s|secs?|seconds?)\b)?"
_RANGE = re.compile(_NUMBER + _UNIT + r"\s*(?:-|–|—|~|\bto\b|\buntil\b|\btill\b)\s*" + _NUMBER)
_DIGIT = re.compile(r"\d")
_MENTIONS = re.compile("|".join(rf"(?P<e{i}>\b(?:{CAPTION_WORDS[name]}))" for i, name in enumerate(EVENT_CLASSES)))


def parse_caption(text: str) -> list[TimedEvent]:
    """Events named in a caption, with the time ranges written after each ("at 0.5-2.0 and 4-5
    seconds"; ``-``, ``to``, ``until`` join a range). A range belongs to the event named last
    before it (the first event, for ranges written before any). Several words naming the same
    class in a row are one mention ("a dog barks"). Numbers that are not ranges are refused."""
    lowered = text.lower()
    ranges = [(m.start(), float(m.group(1)), float(m.group(2))) for m in _RANGE.finditer(lowered)]
    rest = _RANGE.sub(" ", lowered)
    stray = _DIGIT.search(rest)
    if stray is not None:
        word = re.search(r"[\w.]*\d[\w.]*", rest[stray.start():]).group(0)
        raise TimestampError(f"{word!r} is not a time range; write times as start-end in seconds, "
                             "e.g. 'a dog barks at 0.5-2.0 and 4-5 seconds'")
    mentions = []
    for m in _MENTIONS.finditer(lowered):
        name = EVENT_CLASSES[int(m.lastgroup[1:])]
        if not mentions or mentions[-1][1] != name:
            mentions.append((m.start(), name))
    if not mentions:
        raise UnknownEventError("the text names no event PicoAudio can generate")
    found: dict[str, list[tuple[float, float]]] = {name: [] for _, name in mentions}
    for at, start, end in ranges:
        before = [name for pos, name in mentions if pos < at]
        found[before[-1] if before else mentions[0][1]].append((start, end))
    return [TimedEvent(name, tuple(spans)) for name, spans in found.items()]


def _known(name: str) -> str:
    canonical = canonical_event(name)
    if canonical is None:
        raise UnknownEventError(f"unknown event {name.strip()!r}")
    return canonical


def _intervals(spec: str, segment: str) -> list[tuple[float, float]]:
    out = []
    for pair in spec.split("_"):
        bounds = pair.split("-")
        if len(bounds) != 2:
            raise TimestampError(f"{segment!r}: {pair!r} is not a start-end pair")
        try:
            start, end = float(bounds[0]), float(bounds[1])
        except ValueError:
            raise TimestampError(f"{segment!r}: {pair!r} is not a start-end pair of numbers") from None
        out.append((start, end))
    return out


# ---------------------------------------------------------------------------------------------
# checked events -> matrix


def onset_matrix(events: Sequence[TimedEvent], duration: float = MAX_SECONDS) -> np.ndarray:
    """The ``[32, 256]`` float32 onset matrix of checked events. An event without intervals spans
    ``[0, duration]``. Every interval must satisfy ``0 <= start < end <= 10.24``, start before
    ``duration`` (the part of the clip that is returned) and cover at least one 40 ms frame;
    otherwise :class:`TimestampError`. Frames as in :func:`decode_timestamps`."""
    if not events:
        raise UnknownEventError("no event given")
    matrix = np.zeros((MATRIX_ROWS, FRAMES), dtype=np.float32)
    for event in events:
        row = event_id(event.name)
        for start, end in event.intervals or ((0.0, duration),):
            where = f"{event.name} at {start:g}-{end:g} s"
            if not (np.isfinite(start) and np.isfinite(end)) or start < 0 or end <= start:
                raise TimestampError(f"{where}: an interval needs 0 <= start < end")
            if end > MAX_SECONDS:
                raise TimestampError(f"{where}: ends after {MAX_SECONDS:g} s, the longest clip PicoAudio makes")
            if start >= duration:
                raise TimestampError(f"{where}: starts after the end of the clip ({duration:g} s)")
            first, stop = _frame(start), min(_frame(end), FRAMES)
            if stop <= first:
                raise TimestampError(f"{where}: shorter than one onset frame ({1000 // FRAMES_PER_SECOND} ms)")
            matrix[row, first:stop] = 1.0
    return matrix


def event_text(events: Sequence[TimedEvent]) -> str:
    """What CLAP reads: the class names joined with ``" and "`` (the reference's event string)."""
    return " and ".join(event.name for event in events)

"""PicoAudio (timestamp-controlled text to audio): the pipeline, its timestamp front end and its
event classes. Layout, reference notes and weights: ``models/picoaudio/README.md``."""

from models.picoaudio.events import EVENT_CLASSES, events
from models.picoaudio.pipeline import (
    DEFAULT_DURATION,
    DEFAULT_GUIDANCE_SCALE,
    DEFAULT_STEPS,
    MAX_SECONDS,
    MAX_STEPS,
    SAMPLE_RATE,
    PicoAudioPipeline,
    PicoAudioRequest,
)
from models.picoaudio.timestamps import (
    PicoAudioInputError,
    TimedEvent,
    TimestampError,
    UnknownEventError,
    decode_timestamps,
    onset_matrix,
    parse_text,
)

__all__ = [
    "DEFAULT_DURATION",
    "DEFAULT_GUIDANCE_SCALE",
    "DEFAULT_STEPS",
    "EVENT_CLASSES",
    "MAX_SECONDS",
    "MAX_STEPS",
    "SAMPLE_RATE",
    "PicoAudioInputError",
    "PicoAudioPipeline",
    "PicoAudioRequest",
    "TimedEvent",
    "TimestampError",
    "UnknownEventError",
    "decode_timestamps",
    "events",
    "onset_matrix",
    "parse_text",
]

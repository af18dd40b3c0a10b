"""Built-in voices: reference recordings with their transcripts that the product ships by name, for
requests that bring no reference of their own (Metis TTS without ``reference_audio``).

``default``: a LibriTTS utterance (speaker 260, CC BY 4.0) with its normalised transcript, as
Amphion's repository ships it at the pinned commit (``egs/tts/VALLE/prompt_examples``). Fetched and
SHA-256-checked like the G2P data (``models.pinned``), or read from the folder ``$AMPHION_VOICE_DATA``
(holding ``default.wav`` and ``default.txt``). Data, not weights: the ``tiny`` profile reads it too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.pinned import PinnedFile, PinnedSource
from models.weights import HubFiles, WeightsUnavailable, downloads_allowed, find_local, resolve

__all__ = ["BUILTIN_VOICES", "DEFAULT_VOICE", "VOICE_DATA_ENV", "VOICE_FILES", "BuiltinVoice", "VoiceUnavailable",
           "load_builtin_voice", "voice_folder"]

VOICE_DATA_ENV = "AMPHION_VOICE_DATA"
DEFAULT_VOICE = "default"
_EXAMPLES = "egs/tts/VALLE/prompt_examples/260_123440_000010_000004"

#: name -> licence, for the docs and ``/api/voices`` later.
BUILTIN_VOICES: dict[str, str] = {DEFAULT_VOICE: "LibriTTS speaker 260, CC BY 4.0"}

VOICE_SOURCE = PinnedSource("builtin_voices", {
    "default.wav": PinnedFile(f"{_EXAMPLES}.wav",
                              "5a165e5bda9465571670cbdc8caad64a39e39cc40e4bd2ae8d1513811146d9bc", 145004),
    "default.txt": PinnedFile(f"{_EXAMPLES}.normalized.txt",
                              "e5bf8d35f448cbaa62abb9edf6f362cee03385cfbc0b12c8d66b1618142d72a1", 57),
})
VOICE_FILES = HubFiles(repo_id=None, patterns=tuple(VOICE_SOURCE.files), local_dir_env=VOICE_DATA_ENV,
                       pinned=VOICE_SOURCE)


class VoiceUnavailable(RuntimeError):
    """A built-in voice's files are not here (and may not be fetched); the message says what to do."""


@dataclass(frozen=True)
class BuiltinVoice:
    name: str
    audio: np.ndarray          # float32 mono at ``sample_rate``
    sample_rate: int
    text: str                  # its transcript
    licence: str


def voice_folder(mode: str = "auto") -> Path:
    """The folder holding the built-in voices' files: ``$AMPHION_VOICE_DATA``, else the pinned cache.
    The weights resolver looks for them (``pretrained``: downloading into the cache unless
    ``HF_HUB_OFFLINE``; other modes read this machine only, and an auto-mode service fetches them in
    the background: ``deployments.fetching``); then every file is hash-checked."""
    configured = os.environ.get(VOICE_DATA_ENV)
    folder = Path(configured) if configured else VOICE_SOURCE.cache_folder()
    try:
        if mode == "pretrained":
            resolve(VOICE_FILES, "pretrained")
        else:
            find_local(VOICE_FILES)
    except WeightsUnavailable as exc:
        if mode == "pretrained" and not configured and downloads_allowed():  # a download was tried and failed
            raise VoiceUnavailable(f"built-in voices: {exc}") from None
    missing = VOICE_SOURCE.missing(folder, verify=True)
    if missing:
        where = f"the folder given by ${VOICE_DATA_ENV}" if configured else "the data cache"
        raise VoiceUnavailable(
            f"built-in voices: {', '.join(missing)} missing or not matching the pinned hash in {where}; run "
            f"scripts/download_weights.py metis where GitHub is reachable, or set ${VOICE_DATA_ENV} to a folder "
            f"holding {' and '.join(VOICE_SOURCE.files)} ({VOICE_SOURCE.label})")
    return folder


def load_builtin_voice(name: str = DEFAULT_VOICE, sample_rate: int = 24000, *, mode: str = "auto") -> BuiltinVoice:
    """The voice ``name`` resampled to ``sample_rate``. ``mode`` ``pretrained`` may download the
    pinned files; any other mode reads ``$AMPHION_VOICE_DATA`` or the pinned cache only."""
    import soundfile as sf

    from models.audio.resample import to_rate

    if name not in BUILTIN_VOICES:
        raise KeyError(f"no built-in voice {name!r}; built in: {', '.join(BUILTIN_VOICES)}")
    root = voice_folder(mode)
    audio, rate = sf.read(root / f"{name}.wav", dtype="float32", always_2d=True)
    text = (root / f"{name}.txt").read_text(encoding="utf-8").strip()
    return BuiltinVoice(name, to_rate(audio.mean(axis=1), int(rate), sample_rate), sample_rate, text,
                        BUILTIN_VOICES[name])

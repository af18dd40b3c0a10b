"""The built-in voices (models/voices.py): read from $AMPHION_VOICE_DATA or the pinned cache, every
file hash-checked, a clear error naming what to do otherwise."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from models.voices import VOICE_DATA_ENV, VoiceUnavailable, load_builtin_voice

VOICE_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "default_voice"
pytestmark = pytest.mark.skipif(not VOICE_DATA.is_dir(), reason=f"default voice not found at {VOICE_DATA}")


def test_default_voice_at_any_rate(monkeypatch):
    monkeypatch.setenv(VOICE_DATA_ENV, str(VOICE_DATA))
    voice = load_builtin_voice(sample_rate=24000)
    assert voice.text == "I almost think I can remember feeling a little different."
    assert voice.audio.dtype == np.float32 and abs(voice.audio.size / 24000 - 3.02) < 0.01
    assert "CC BY 4.0" in voice.licence
    assert abs(load_builtin_voice(sample_rate=16000).audio.size / 16000 - 3.02) < 0.01
    with pytest.raises(KeyError, match="default"):
        load_builtin_voice("nobody")


def test_a_changed_file_is_refused(monkeypatch, tmp_path):
    for name in ("default.wav", "default.txt"):
        shutil.copy(VOICE_DATA / name, tmp_path / name)
    (tmp_path / "default.txt").write_text("Something else entirely, same length of text here!!!!!!\n")
    monkeypatch.setenv(VOICE_DATA_ENV, str(tmp_path))
    with pytest.raises(VoiceUnavailable, match="default.txt"):
        load_builtin_voice()


def test_missing_without_download_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.delenv(VOICE_DATA_ENV, raising=False)
    monkeypatch.setenv("AMPHION_DATA_CACHE", str(tmp_path))
    with pytest.raises(VoiceUnavailable) as info:
        load_builtin_voice(mode="auto")
    message = str(info.value)
    assert "download_weights.py metis" in message and VOICE_DATA_ENV in message and str(tmp_path) not in message

"""Metis through the application (tiny weights): TTS with a reference and with the built-in voice,
VC, SE and TSE as a client calls them; seeded, with per-step progress, health per task, 4xx on bad input."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from models.text import espeak_version
from tests.conftest import G2P_DATA, VOICE_DATA

pytestmark = pytest.mark.integration
needs_text = pytest.mark.skipif(not G2P_DATA.is_dir() or not VOICE_DATA.is_dir() or espeak_version() is None,
                                reason="G2P data, the default voice or espeak-ng missing")


def voice_wav(seconds: float, f0: float, sr: int = 24000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.2 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    buf = io.BytesIO()
    sf.write(buf, wave.astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def post(served, key, path, data=None, files=None, task_id=None):
    headers = {"X-API-Key": key, **({"X-Task-ID": task_id} if task_id else {})}
    return httpx.post(served.base_url + path, headers=headers, data=data or {}, files=files, timeout=300)


def samples(r) -> np.ndarray:
    audio, sr = sf.read(io.BytesIO(r.content), dtype="float32")
    assert sr == 24000 and r.headers["x-sample-rate"] == "24000" and r.headers["x-amphion-weights"] == "tiny"
    assert np.isfinite(audio).all() and audio.size > 0
    return audio


@needs_text
def test_tts_with_reference_seeded_with_progress(served):
    key = served.fresh_key()
    data = {"text": "Good morning, this is Metis.", "reference_text": "Hello there, my friend.", "language": "en",
            "seed": "11"}
    files = {"reference_audio": ("ref.wav", voice_wav(1.5, 180))}
    task_id = f"it-metis-{time.time_ns()}"
    r, events = served.with_progress(key, task_id, lambda: post(served, key, "/api/tts/metis", data, files, task_id))
    assert r.status_code == 200, r.text
    first = samples(r)
    stages = {e["stage"] for e in events}
    assert {"t2s", "s2a"} <= stages and events[-1]["status"] == "completed"
    assert post(served, key, "/api/tts/metis", data, files).content == r.content
    fixed = post(served, key, "/api/tts/metis", {**data, "target_len": "0.5"}, files)
    assert len(samples(fixed)) == 25 * 480 and len(first) != 25 * 480


@needs_text
def test_tts_without_reference_text_transcribes_the_reference(served):
    """The shared WhisperASR deployment supplies the transcript: an "asr" stage before "t2s"."""
    key = served.fresh_key()
    data = {"text": "Good morning, this is Metis.", "language": "en", "seed": "4"}
    files = {"reference_audio": ("ref.wav", voice_wav(2.0, 170))}
    task_id = f"it-metis-asr-{time.time_ns()}"
    r, events = served.with_progress(key, task_id, lambda: post(served, key, "/api/tts/metis", data, files, task_id))
    assert r.status_code == 200, r.text
    samples(r)
    stages = [e["stage"] for e in events]
    assert "asr" in stages and stages.index("asr") < stages.index("t2s")
    assert post(served, key, "/api/tts/metis", data, files).content == r.content


@needs_text
def test_tts_without_reference_uses_the_builtin_voice(served):
    key = served.fresh_key()
    r = post(served, key, "/api/tts/metis", {"text": "Nobody sent a reference for this one.", "seed": "2"})
    assert r.status_code == 200, r.text
    assert len(samples(r)) % 480 == 0


@pytest.mark.parametrize("path,fields", [
    ("/api/vc/metis", {"source_audio": 1.4, "reference_audio": 1.0}),
    ("/api/se/metis", {"audio": 1.4}),
    ("/api/tse/metis", {"audio": 1.4, "reference_audio": 1.0}),
])
def test_conversion_tasks_keep_the_source_length(served, path, fields):
    key = served.fresh_key()
    files = {name: (f"{name}.wav", voice_wav(seconds, 150 + 40 * i)) for i, (name, seconds) in enumerate(fields.items())}
    task_id = f"it-metis-{time.time_ns()}"
    r, events = served.with_progress(key, task_id, lambda: post(served, key, path, {"seed": "3"}, files, task_id))
    assert r.status_code == 200, r.text
    audio = samples(r)
    source_seconds = next(iter(fields.values()))
    assert abs(len(audio) / 24000 - source_seconds) <= 0.05, len(audio)
    assert any(e["stage"] == "semantic" for e in events) and events[-1]["status"] == "completed"
    assert post(served, key, path, {"seed": "3"}, files).content == r.content


def test_health_lists_each_metis_task(served):
    models = httpx.get(served.base_url + "/api/health").json()["models"]
    for key, route in (("metis", "/api/tts/metis"), ("metis_vc", "/api/vc/metis"), ("metis_se", "/api/se/metis"),
                       ("metis_tse", "/api/tse/metis")):
        assert models[key]["routes"] == [route]
        if key != "metis" or G2P_DATA.is_dir():
            assert models[key]["status"] == "ready" and models[key]["weights"] == "tiny", models[key]


@pytest.mark.parametrize("path,data,files,status,needle", [
    ("/api/tts/metis", {"text": ""}, None, 422, None),
    ("/api/tts/metis", {"text": "Hello.", "n_timesteps": "0"}, None, 422, None),
    ("/api/se/metis", {}, {"audio": 0.01}, 400, "too short"),
    ("/api/tse/metis", {}, {"audio": 1.0}, 422, None),
    ("/api/vc/metis", {}, {"source_audio": 1.0, "reference_audio": 0.2}, 400, "reference audio too short"),
])
def test_bad_input(served, path, data, files, status, needle):
    files = {name: (f"{name}.wav", voice_wav(seconds, 160)) for name, seconds in (files or {}).items()} or None
    r = post(served, served.fresh_key(), path, data, files)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    if needle:
        assert needle in detail and "Traceback" not in detail

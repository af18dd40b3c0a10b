"""MaskGCT through the application (tiny weights): speech of the requested length, progress for
every T2S and S2A step, reproducible seeds, clear 4xx on bad input."""

from __future__ import annotations

import asyncio
import io
import json
import time

import httpx
import numpy as np
import pytest
import soundfile as sf
import websockets

from tests.conftest import G2P_DATA

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not G2P_DATA.is_dir(), reason=f"G2P reference data not found at {G2P_DATA}")]


def reference_wav(seconds=3.0, sr=24000):
    t = np.arange(int(seconds * sr)) / sr
    f0 = 150 + 20 * np.sin(2 * np.pi * 0.5 * t)
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / sr) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def synthesize(served, key, seed=7, target_len="2.0", task_id=None, **overrides):
    data = {"text": "Hello world, this is a test.", "reference_text": "A reference sentence spoken here.",
            "language": "en", "target_len": target_len, "seed": str(seed), "n_timesteps": "8", **overrides}
    data = {k: v for k, v in data.items() if v is not None}  # None: leave the field out
    headers = {"X-API-Key": key}
    if task_id:
        headers["X-Task-ID"] = task_id
    return httpx.post(served.base_url + "/api/tts/maskgct", headers=headers, data=data,
                      files={"reference_audio": ("ref.wav", reference_wav())}, timeout=300)


def test_maskgct_speech_of_requested_length_with_step_progress(served):
    key = served.fresh_key()
    task_id = f"it-maskgct-{time.time_ns()}"

    r, events = served.with_progress(key, task_id, lambda: synthesize(served, key, 7, "2.0", task_id))
    assert r.status_code == 200, r.text
    out, sr = sf.read(io.BytesIO(r.content), dtype="float32")
    assert sr == 24000 and r.headers["x-amphion-weights"] == "tiny"
    assert len(out) == 2 * 24000                      # 100 frames of 480 samples
    assert np.isfinite(out).all() and np.sqrt(np.mean(out ** 2)) > 1e-4
    t2s = [e for e in events if e["stage"] == "t2s"]
    s2a = [e for e in events if e["stage"] == "s2a"]
    assert [e["step"] for e in t2s] == list(range(1, t2s[0]["total_steps"] + 1))
    assert len(s2a) == s2a[0]["total_steps"] and s2a[-1]["step"] == s2a[-1]["total_steps"]
    assert events[-1]["status"] == "completed"


def test_maskgct_without_reference_text_transcribes_the_reference(served):
    """Whisper (the shared WhisperASR deployment) supplies the prompt transcript: an "asr" progress
    stage, then speech of the requested length; reproducible like any other request."""
    key = served.fresh_key()
    task_id = f"it-maskgct-asr-{time.time_ns()}"

    async def scenario():
        events = []

        async def listen():
            async with websockets.connect(f"{served.ws_url}/ws/progress/{task_id}",
                                          additional_headers={"X-API-Key": key}) as ws:
                async for message in ws:
                    events.append(json.loads(message))

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.5)
        response = await asyncio.to_thread(synthesize, served, key, 5, "1.0", task_id, reference_text=None)
        await asyncio.wait_for(listener, 30)
        return response, events

    r, events = asyncio.run(scenario())
    assert r.status_code == 200, r.text
    out, sr = sf.read(io.BytesIO(r.content), dtype="float32")
    assert sr == 24000 and len(out) == 24000
    stages = [e["stage"] for e in events]
    assert "asr" in stages and stages.index("asr") < stages.index("t2s")
    again = synthesize(served, key, 5, "1.0", reference_text=None)
    assert again.status_code == 200 and again.content == r.content


def test_maskgct_same_seed_same_audio(served):
    key = served.fresh_key()
    a, b, c = (synthesize(served, key, seed) for seed in (3, 3, 4))
    assert a.status_code == b.status_code == c.status_code == 200
    assert a.content == b.content and a.content != c.content


@pytest.mark.parametrize("overrides,status,needle", [
    ({"text": ""}, 422, None),
    ({"language": "xx"}, 400, "language"),
    ({"text": "x" * 2001}, 422, None),
    ({"target_len": "0"}, 422, None),
])
def test_maskgct_bad_input(served, overrides, status, needle):
    r = synthesize(served, served.fresh_key(), **overrides)
    assert r.status_code == status, r.text
    if needle:
        assert needle in r.json()["detail"]


def test_maskgct_silent_or_undecodable_reference(served):
    key = served.fresh_key()
    silent = io.BytesIO()
    sf.write(silent, np.zeros(48000, np.float32), 24000, format="WAV")
    truncated = reference_wav()[:30]  # a WAV header cut short: recognised, but cannot be decoded
    for ref, status in ((silent.getvalue(), 400), (truncated, 400)):
        r = httpx.post(served.base_url + "/api/tts/maskgct", headers={"X-API-Key": key},
                       data={"text": "Hello", "reference_text": "Hi there", "language": "en"},
                       files={"reference_audio": ("ref.wav", ref)}, timeout=120)
        assert r.status_code == status, r.text
        assert "reference" in r.json()["detail"].lower()

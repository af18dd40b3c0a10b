"""DualCodec-VALL-E through the application (tiny weights): the reference encoded by the DualCodec
deployment, codes generated and decoded to 24 kHz speech whose length follows the text, the same
seed the same audio, per-token progress, 4xx on bad input."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.conftest import VALLE_TEXT

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not VALLE_TEXT.is_dir(), reason=f"VALL-E text vocabulary not found at {VALLE_TEXT}")]


def voice_wav(seconds: float, f0: float, sr: int = 24000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.2 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32), sr,
             format="WAV")
    return buf.getvalue()


def post(served, key, data, task_id=None, reference=True):
    headers = {"X-API-Key": key, **({"X-Task-ID": task_id} if task_id else {})}
    files = {"reference_audio": ("ref.wav", voice_wav(2.0, 170))} if reference else None
    return httpx.post(served.base_url + "/api/tts/dualcodec-valle", headers=headers, data=data, files=files,
                      timeout=300)


def test_speech_follows_the_text_seeded_with_progress(served):
    key = served.fresh_key()
    data = {"text": "Hello there.", "reference_text": "This is my voice.", "seed": "5"}
    task_id = f"it-valle-{time.time_ns()}"
    r, events = served.with_progress(key, task_id, lambda: post(served, key, data, task_id))
    assert r.status_code == 200, r.text
    short, sr = sf.read(io.BytesIO(r.content), dtype="float32")
    assert sr == 24000 and r.headers["x-amphion-weights"] == "tiny" and np.isfinite(short).all() and len(short) > 0
    assert any(e["stage"] == "ar" for e in events) and events[-1]["status"] == "completed"
    assert post(served, key, data).content == r.content
    longer = post(served, key, {**data, "text": "Hello there, this sentence is a good deal longer than that one."})
    assert len(sf.read(io.BytesIO(longer.content), dtype="float32")[0]) > len(short)


@pytest.mark.parametrize("data,reference,status", [
    ({"text": "Hello."}, False, 422),
    ({"text": "", "reference_text": "Hi."}, True, 422),
    ({"text": "Hello.", "reference_text": "Hi.", "top_p": "0"}, True, 422),
])
def test_bad_input(served, data, reference, status):
    r = post(served, served.fresh_key(), data, reference=reference)
    assert r.status_code == status, r.text
    assert "detail" in r.json()

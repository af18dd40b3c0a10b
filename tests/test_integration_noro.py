"""Noro voice conversion through the application (tiny weights): 16 kHz audio as long as the source,
the same seed the same audio, progress per front end and sampler step, ``reference_audio`` accepted
for ``target_audio``, requests sent together each answered as alone, 422 for out-of-range settings
and 400 for a target too short to take a mel of."""

from __future__ import annotations

import asyncio
import io
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.integration

PATH = "/api/vc/noro"
STEPS = "50"  # the smallest inference_steps allowed: keeps the tests quick


def voice_wav(seconds: float, f0: float, sr: int = 16000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.2 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32), sr,
             format="WAV")
    return buf.getvalue()


SOURCE = voice_wav(1.5, 130, sr=24000)  # decoded at 16 kHz by the ingress: 24000 samples
TARGET = voice_wav(1.0, 220)


def post(served, key, data, *, target_field="target_audio", target=TARGET, task_id=None):
    headers = {"X-API-Key": key, **({"X-Task-ID": task_id} if task_id else {})}
    files = {"source_audio": ("source.wav", SOURCE, "audio/wav")}
    if target_field:
        files[target_field] = ("target.wav", target, "audio/wav")
    return httpx.post(served.base_url + PATH, headers=headers, data=data, files=files, timeout=300)


def audio_of(r) -> np.ndarray:
    assert r.status_code == 200, r.text
    out, sr = sf.read(io.BytesIO(r.content), dtype="float32")
    assert sr == 16000 and r.headers["x-sample-rate"] == "16000" and r.headers["x-amphion-weights"] == "tiny"
    assert np.isfinite(out).all() and np.abs(out).max() > 0
    assert abs(len(out) - 24000) <= 16, len(out)  # as long as the source (1.5 s), within 1 ms of resampling
    return out


def test_conversion_seeded_with_progress(served):
    key = served.fresh_key()
    data = {"inference_steps": STEPS, "sigma": "1.2", "seed": "5"}
    task_id = f"it-noro-{time.time_ns()}"
    r, events = served.with_progress(key, task_id, lambda: post(served, key, data, task_id=task_id))
    audio_of(r)
    stages = [e["stage"] for e in events]
    assert "content" in stages and "reference" in stages and "vocoding" in stages, stages
    steps = [(e["step"], e["total_steps"]) for e in events if e["stage"] == "diffusion"]
    assert steps == [(i, 50) for i in range(1, 51)]
    assert events[-1]["status"] == "completed"
    assert post(served, key, data).content == r.content  # same seed, same audio
    other = post(served, key, {**data, "seed": "6"})
    assert audio_of(other) is not None and other.content != r.content


def test_reference_audio_is_an_alias_of_target_audio(served):
    key = served.fresh_key()
    data = {"inference_steps": STEPS, "seed": "11"}
    documented = post(served, key, data)
    alias = post(served, key, data, target_field="reference_audio")
    audio_of(alias)
    assert alias.content == documented.content


def test_requests_sent_together_each_get_their_own_result(served):
    """The replica converts one request at a time; requests sent together all succeed and each
    answers what it answers alone."""
    key = served.fresh_key()
    datas = [{"inference_steps": STEPS, "seed": str(seed)} for seed in (21, 22, 23)]

    async def together():
        return await asyncio.gather(*(asyncio.to_thread(post, served, key, d) for d in datas))

    responses = asyncio.run(together())
    for data, r in zip(datas, responses):
        audio_of(r)
        assert post(served, key, data).content == r.content


@pytest.mark.parametrize("data,field", [
    ({"inference_steps": "49"}, "inference_steps"),
    ({"inference_steps": "501"}, "inference_steps"),
    ({"sigma": "0.89"}, "sigma"),
    ({"sigma": "1.51"}, "sigma"),
])
def test_out_of_range_settings_are_422(served, data, field):
    r = post(served, served.fresh_key(), data)
    assert r.status_code == 422, r.text
    assert any(e["loc"][-1] == field for e in r.json()["detail"]), r.text


def test_missing_target_is_422(served):
    r = post(served, served.fresh_key(), {"inference_steps": STEPS}, target_field=None)
    assert r.status_code == 422, r.text
    assert "detail" in r.json()


def test_too_short_target_is_400(served):
    r = post(served, served.fresh_key(), {"inference_steps": STEPS}, target=voice_wav(0.01, 220))
    assert r.status_code == 400, r.text
    assert "too short" in r.json()["detail"]

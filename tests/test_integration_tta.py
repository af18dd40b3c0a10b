"""Text to audio through the application (tiny weights): AudioLDM (diffusers and Amphion's checkpoint)
and PicoAudio give 16 kHz audio of exactly the asked length, the same seed the same audio, a
progress event per denoising step, and 4xx with a reason on bad input."""

from __future__ import annotations

import asyncio
import io
import json
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.integration


def post(served, path, key, data, task_id=None):
    headers = {"X-API-Key": key, **({"X-Task-ID": task_id} if task_id else {})}
    return httpx.post(served.base_url + path, headers=headers, data=data, timeout=300)


def audio_of(r) -> np.ndarray:
    assert r.status_code == 200, r.text
    out, sr = sf.read(io.BytesIO(r.content), dtype="float32")
    assert sr == 16000 and np.isfinite(out).all() and r.headers["x-amphion-weights"] == "tiny"
    assert np.abs(out).max() > 0  # never silence
    return out


def with_progress(served, key, path, data):
    task_id = f"it-tta-{time.time_ns()}"
    return served.with_progress(key, task_id, lambda: post(served, path, key, data, task_id))


@pytest.mark.parametrize("model", [None, "amphion"])
def test_audioldm_exact_length_seeded_with_progress(served, model):
    key = served.fresh_key()
    data = {"text": "a dog barking in the park", "audio_length_in_s": "1.5", "num_inference_steps": "10",
            "seed": "3", **({"model": model} if model else {})}
    r, events = with_progress(served, key, "/api/tta/audioldm", data)
    out = audio_of(r)
    assert len(out) == 24000
    steps = [e["step"] for e in events if e["stage"] == "diffusion"]
    assert steps == list(range(1, steps[-1] + 1)) and steps[-1] >= 10 and events[-1]["status"] == "completed"
    assert post(served, "/api/tta/audioldm", key, data).content == r.content  # same seed, same audio
    other = post(served, "/api/tta/audioldm", key, {**data, "seed": "4"})
    assert other.status_code == 200 and other.content != r.content


def test_concurrent_audioldm_requests_keep_their_own_results(served):
    """Requests that may share a batch give what each gives alone."""
    key = served.fresh_key()
    datas = [{"text": text, "audio_length_in_s": "1.0", "num_inference_steps": "10", "seed": str(seed)}
             for text, seed in (("rain on a roof", 1), ("a car horn", 2), ("birds singing", 3))]
    alone = [audio_of(post(served, "/api/tta/audioldm", key, d)) for d in datas]

    async def together():
        return await asyncio.gather(*(asyncio.to_thread(post, served, "/api/tta/audioldm", key, d) for d in datas))

    for single, r in zip(alone, asyncio.run(together())):
        np.testing.assert_allclose(audio_of(r), single, atol=1e-4)


def test_picoaudio_events_and_timed_generation(served):
    key = served.fresh_key()
    r = httpx.get(served.base_url + "/api/tta/picoaudio/events", headers={"X-API-Key": key}, timeout=30)
    assert r.status_code == 200
    events = r.json()["events"]
    assert len(events) > 3 and all(isinstance(e, str) for e in events)
    text = f"{events[0]}__0.5-1.0--{events[1]}__1.2-2.0"
    data = {"text": text, "duration": "2.5", "num_inference_steps": "5", "seed": "1"}
    r, progress = with_progress(served, key, "/api/tta/picoaudio", data)
    assert len(audio_of(r)) == 40000
    assert [e["step"] for e in progress if e["stage"] == "diffusion"][-1] >= 5
    assert post(served, "/api/tta/picoaudio", key, data).content == r.content
    caption = post(served, "/api/tta/picoaudio", key, {**data, "text": f"{events[0]} at 0.5-1.5 seconds"})
    assert len(audio_of(caption)) == 40000


def test_health_reports_both_ready(served):
    body = httpx.get(served.base_url + "/api/health").json()
    assert body["models"]["audioldm"]["status"] == "ready"
    assert body["models"]["picoaudio"]["status"] == "ready"


@pytest.mark.parametrize("path,data,status,words", [
    ("/api/tta/audioldm", {"text": ""}, 422, ["text"]),
    ("/api/tta/audioldm", {"text": "rain", "num_inference_steps": "201"}, 422, ["num_inference_steps"]),
    ("/api/tta/audioldm", {"text": "rain", "model": "someone/not-served"}, 400, ["cvssp/audioldm-s-full-v2", "amphion"]),
    ("/api/tta/audioldm", {"text": "rain", "model": "amphion", "audio_length_in_s": "12",
                           "num_inference_steps": "10"}, 400, ["9.98"]),
    ("/api/tta/picoaudio", {"text": "a spaceship hums", "num_inference_steps": "5"}, 400, []),
    ("/api/tta/picoaudio", {"text": "x", "duration": "11"}, 422, ["duration"]),
])
def test_bad_input(served, path, data, status, words):
    r = post(served, path, served.fresh_key(), data)
    assert r.status_code == status, r.text
    detail = json.dumps(r.json()["detail"])
    assert all(w in detail for w in words), detail

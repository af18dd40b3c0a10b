"""The four Amphion SVC routes through the application (tiny weights): a song converted to a singer
of the checkpoint (named, or picked by the reference's pitch and reported in a header), seeded, with
progress per diffusion step; the singers listing; 4xx with reasons on bad input."""

from __future__ import annotations

import io
import time
from urllib.parse import unquote

import httpx
import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.integration

STEPS = {"multiplecontentssvc": "4", "diffcomosvc": "3"}


def song(seconds: float, freq: float, sr: int = 44100, channels: int = 2) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(freq * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))) / sr
    wave = (0.3 * (np.sin(phase) + 0.3 * np.sin(2 * phase))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, np.stack([wave] * channels, axis=1), sr, format="WAV")
    return buf.getvalue()


def post(served, key, model, data=None, reference=True, task_id=None, content_seconds=2.0):
    headers = {"X-API-Key": key, **({"X-Task-ID": task_id} if task_id else {})}
    files = {"content_audio": ("song.wav", song(content_seconds, 220.0))}
    if reference:
        files["reference_audio"] = ("ref.wav", song(1.5, 330.0, sr=24000, channels=1))
    return httpx.post(f"{served.base_url}/api/svc/{model}", headers=headers, data=data or {}, files=files, timeout=300)


@pytest.mark.parametrize("model", ["multiplecontentssvc", "diffcomosvc", "transformersvc", "vitssvc"])
def test_song_converted_seeded_with_progress(served, model):
    key = served.fresh_key()
    data = {"seed": "3", **({"diffusion_steps": STEPS[model]} if model in STEPS else {})}
    task_id = f"it-svc-{model}-{time.time_ns()}"
    r, events = served.with_progress(key, task_id, lambda: post(served, key, model, data, task_id=task_id))
    assert r.status_code == 200, r.text
    audio, sr = sf.read(io.BytesIO(r.content), dtype="float32")
    assert sr == 24000 and r.headers["x-amphion-weights"] == "tiny" and np.isfinite(audio).all()
    assert abs(len(audio) / sr - 2.0) < 0.05, len(audio)          # a 44.1 kHz stereo source, 24 kHz mono out
    singers = httpx.get(f"{served.base_url}/api/svc/{model}/singers", headers={"X-API-Key": key}).json()["singers"]
    assert unquote(r.headers["x-amphion-target-singer"]) in {s["name"] for s in singers}
    assert "acoustic" in {e["stage"] for e in events} and events[-1]["status"] == "completed"
    assert post(served, key, model, data).content == r.content


def test_target_singer_by_name_without_reference(served):
    key = served.fresh_key()
    singers = httpx.get(f"{served.base_url}/api/svc/transformersvc/singers", headers={"X-API-Key": key}).json()
    assert singers["model"] == "transformersvc" and all(isinstance(s["f0_median"], float) for s in singers["singers"])
    name = singers["singers"][0]["name"]
    r = post(served, key, "transformersvc", {"target_singer": name, "key_shift": "-3"}, reference=False)
    assert r.status_code == 200, r.text
    assert unquote(r.headers["x-amphion-target-singer"]) == name


@pytest.mark.parametrize("model,data,reference,status,needle", [
    ("multiplecontentssvc", {"diffusion_steps": "3"}, True, 422, "diffusion_steps"),   # PNDM needs at least 4
    ("transformersvc", {}, False, 422, "reference_audio"),                             # neither reference nor singer
    ("vitssvc", {"key_shift": "up"}, True, 422, "key_shift"),
    ("vitssvc", {"target_singer": "nobody at all"}, True, 400, "nobody at all"),
])
def test_bad_input(served, model, data, reference, status, needle):
    r = post(served, served.fresh_key(), model, data, reference=reference)
    assert r.status_code == status, r.text
    assert needle in r.text and "Traceback" not in r.text

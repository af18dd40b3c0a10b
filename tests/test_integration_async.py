"""Long jobs on the running application (two ingress replicas, tiny weights): ``Prefer:
respond-async`` answers 202 at once; ``/api/tasks/{task_id}`` and ``/result`` answer on either
replica.

Every poll here is a fresh HTTP connection (``httpx.get``), which Serve's proxy sends to either
ingress replica (both idle: a random pick), so a store that was not shared would fail about half of
them; the job itself runs on the replica that answered the 202. Expiry (410) needs a short TTL and
is covered on the plain app in tests/test_async_jobs.py; the suite's app keeps the default.
"""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.integration

ASYNC = {"Prefer": "respond-async"}


def wav_bytes(seconds: float, sr: int = 24000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    x = (0.4 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 660 * t)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def get(served, path, key):
    """A GET on a fresh connection (so it may land on either ingress replica)."""
    return httpx.get(served.base_url + path, headers={"X-API-Key": key}, timeout=30)


def poll(served, task_id, key, timeout=120.0) -> list[dict]:
    """Status events seen until the task finished (each poll a fresh connection)."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        r = get(served, f"/api/tasks/{task_id}", key)
        assert r.status_code == 200, r.text
        seen.append(r.json())
        if seen[-1]["status"] in ("completed", "failed"):
            return seen
        assert time.monotonic() < deadline, seen[-1]
        time.sleep(0.2)


def test_async_vocoder_job_gives_the_synchronous_answer_on_any_replica(served):
    key = served.fresh_key()
    files = {"audio": ("voice.wav", wav_bytes(8.0), "audio/wav")}
    started = time.monotonic()
    sync = httpx.post(served.base_url + "/api/vocoder/bigvgan", headers={"X-API-Key": key}, files=files, timeout=120)
    sync_s = time.monotonic() - started
    assert sync.status_code == 200, sync.text

    started = time.monotonic()
    r = httpx.post(served.base_url + "/api/vocoder/bigvgan", headers={"X-API-Key": key, **ASYNC}, files=files,
                   timeout=120)
    accepted_s = time.monotonic() - started
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]
    assert r.headers["location"] == f"/api/tasks/{task_id}" and r.headers["preference-applied"] == "respond-async"
    assert r.headers["x-task-id"] == task_id
    events = poll(served, task_id, key)
    done_s = time.monotonic() - started
    print(f"sync {sync_s:.2f} s; async: 202 after {accepted_s:.3f} s, completed seen after {done_s:.2f} s, "
          f"{len(events)} polls")
    assert accepted_s < sync_s   # the 202 does not wait for the model (measured: 0.08 s vs 1.85 s)
    assert {e["status"] for e in events} <= {"queued", "running", "completed"}
    assert events[-1]["status"] == "completed" and events[-1]["progress"] == 1.0
    assert all(e["task_id"] == task_id for e in events)

    # The result, fetched several times on fresh connections: the synchronous answer, byte for byte.
    for _ in range(6):
        result = get(served, f"/api/tasks/{task_id}/result", key)
        assert result.status_code == 200
        assert result.content == sync.content
        assert result.headers["content-type"] == "audio/wav" and result.headers["x-task-id"] == task_id
        assert result.headers["x-sample-rate"] == sync.headers["x-sample-rate"]
        assert result.headers["x-audio-duration"] == sync.headers["x-audio-duration"]
        assert "x-ratelimit-remaining" not in result.headers      # polls are not counted


def test_tasks_belong_to_their_key(served):
    key, other = served.fresh_key(), served.fresh_key()
    r = httpx.post(served.base_url + "/api/vocoder/hifigan", headers={"X-API-Key": key, **ASYNC},
                   files={"audio": ("a.wav", wav_bytes(0.5))}, timeout=60)
    assert r.status_code == 202
    task_id = r.json()["task_id"]
    assert poll(served, task_id, key)[-1]["status"] == "completed"
    for path in (f"/api/tasks/{task_id}", f"/api/tasks/{task_id}/result",
                 "/api/tasks/never-was-a-task-0001", "/api/tasks/never-was-a-task-0001/result"):
        for _ in range(2):
            r = get(served, path, other)
            assert r.status_code == 404 and "no such task" in r.json()["detail"], (path, r.text)
    assert httpx.get(served.base_url + f"/api/tasks/{task_id}", timeout=30).status_code == 401


def test_bad_input_in_an_async_request_is_its_result(served):
    """The gate refuses what it can judge without reading the form (key, rate, size: directly); the
    route's own validation runs in the job, so its 4xx is the job's result."""
    key = served.fresh_key()
    r = httpx.post(served.base_url + "/api/vocoder/generic", headers={"X-API-Key": key, **ASYNC},
                   data={"vocoder_name": "no-such-vocoder"}, files={"audio": ("a.wav", wav_bytes(0.5))}, timeout=60)
    assert r.status_code == 202
    events = poll(served, r.json()["task_id"], key)
    result = get(served, f"/api/tasks/{r.json()['task_id']}/result", key)
    assert events[-1]["status"] == "failed" and result.status_code == 422
    assert result.json()["detail"][0]["loc"] == ["body", "vocoder_name"]

    r = httpx.post(served.base_url + "/api/vocoder/hifigan", headers={"X-API-Key": key, **ASYNC},
                   files={"audio": ("a.wav", wav_bytes(0.01))}, timeout=60)
    events = poll(served, r.json()["task_id"], key)
    result = get(served, f"/api/tasks/{r.json()['task_id']}/result", key)
    assert result.status_code == 400 and "too short" in result.json()["detail"]
    assert events[-1]["status"] == "failed" and events[-1]["detail"] == result.json()["detail"]

    # Over the upload limit (3 MB here): refused before any 202.
    r = httpx.post(served.base_url + "/api/vocoder/hifigan", headers={"X-API-Key": key, **ASYNC},
                   files={"audio": ("a.wav", b"\0" * (6 * 1024 * 1024))}, timeout=60)
    assert r.status_code == 413


def test_a_running_job_is_visible_from_both_replicas(served):
    key = served.fresh_key()
    task_id = f"it-async-{time.time_ns()}"
    r = httpx.post(served.base_url + "/api/vocoder/generic",
                   headers={"X-API-Key": key, "X-Task-ID": task_id, **ASYNC},
                   data={"vocoder_name": "nsf_hifigan"}, files={"audio": ("a.wav", wav_bytes(8.0))}, timeout=60)
    assert r.status_code == 202 and r.json()["task_id"] == task_id
    first = get(served, f"/api/tasks/{task_id}/result", key)
    if first.status_code == 404:   # still running (the usual case for 8 s of NSF-HiFiGAN on one thread)
        assert "still running" in first.json()["detail"]
    events = poll(served, task_id, key)
    assert events[-1]["status"] == "completed"
    # The same id again while its result is kept: 409.
    r = httpx.post(served.base_url + "/api/vocoder/hifigan",
                   headers={"X-API-Key": key, "X-Task-ID": task_id, **ASYNC},
                   files={"audio": ("a.wav", wav_bytes(0.5))}, timeout=60)
    assert r.status_code == 409
    out, sr = sf.read(io.BytesIO(get(served, f"/api/tasks/{task_id}/result", key).content))
    assert sr == 24000 and abs(len(out) / sr - 8.0) < 0.05

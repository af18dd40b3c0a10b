"""Async jobs without Ray: the shared result store (serve_app.task_results) and the
``Prefer: respond-async`` layer with the task routes on the plain FastAPI app with fake vocoders.
The same behaviour on the running application, across two ingress replicas, is in
tests/test_integration_async.py."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from serve_app.async_jobs import wants_async
from serve_app.routes.tasks import LOST_DETAIL
from serve_app.task_results import META, RESULT, TaskIdInUse, TaskResults, error_detail
from tests.serving_fakes import KEYS, FakeVocoder, make_app

_keys = itertools.cycle(KEYS)
ASYNC = {"Prefer": "respond-async"}


def wav_bytes(seconds=0.3, sr=24000):
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def key():
    return {"X-API-Key": next(_keys)}


# ---------------------------------------------------------------------------------------------
# The store


def finished(store: TaskResults, task_id: str, owner: str = "owner-a", status: int = 200, body: bytes = b"RIFF..."):
    store.create(task_id, owner)
    writer = store.writer(task_id)
    writer.start(status, [("content-type", "audio/wav"), ("x-sample-rate", "24000")])
    writer.write(body)
    return store.finish(task_id, writer, status, error_detail(status, body))


def test_store_keeps_owner_status_and_the_response_byte_for_byte(tmp_path):
    store = TaskResults(tmp_path, ttl_s=60)
    record = store.create("task-0001", "owner-a")
    assert record.owner == "owner-a" and not record.done and not record.lost(time.time())
    assert store.open_result("task-0001") is None          # nothing before the job finished
    body = bytes(range(256)) * 100 + b"\n\n{not json"       # binary, newlines: kept as sent
    record = finished(store, "task-0002", body=body)
    assert record.done and record.status == 200 and record.detail == ""
    assert 59 < record.expires - record.finished <= 60      # kept ttl_s after it finished
    stored = store.open_result("task-0002")
    try:
        assert stored.status == 200 and ("x-sample-rate", "24000") in stored.headers
        assert stored.length == len(body) and stored.file.read() == body
    finally:
        stored.close()
    # No temporary files left beside the record and the result.
    assert sorted(p.name for p in (tmp_path / "task-0002").iterdir()) == [META, RESULT]


def test_store_error_detail_and_ids(tmp_path):
    store = TaskResults(tmp_path, ttl_s=60)
    record = finished(store, "task-0003", status=400, body=json.dumps({"detail": "audio: not WAV"}).encode())
    assert record.status == 400 and record.detail == "audio: not WAV"
    assert "HTTP 422" in error_detail(422, json.dumps({"detail": [{"loc": ["body", "audio"]}]}).encode())
    # A task id is a folder name: anything else is no task, never a path.
    assert store.read("../etc") is None and store.read("a" * 65) is None
    with pytest.raises(ValueError):
        store.create("../../x", "owner-a")


class FakeClock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_store_task_id_is_held_until_it_expires(tmp_path):
    clock = FakeClock()
    store = TaskResults(tmp_path, ttl_s=60, tombstone_s=100, clock=clock)
    store.create("task-0004", "owner-a")
    for owner in ("owner-a", "owner-b"):   # neither the same key nor another may take it over
        with pytest.raises(TaskIdInUse):
            store.create("task-0004", owner)
    finished(store, "task-0005")
    clock.now += 60 + 99                    # expired, still a tombstone: still held
    with pytest.raises(TaskIdInUse):
        store.create("task-0005", "owner-b")
    clock.now += 2                          # past the tombstone: the id is free again
    assert store.create("task-0005", "owner-b").owner == "owner-b"


def test_store_expiry_keeps_a_tombstone_then_forgets(tmp_path):
    clock = FakeClock()
    store = TaskResults(tmp_path, ttl_s=60, tombstone_s=100, clock=clock)
    finished(store, "task-0006")
    clock.now += 59
    assert store.sweep() == 0 and store.open_result("task-0006") is not None
    clock.now += 2
    assert store.read("task-0006").expired(clock())
    assert store.sweep() == 0
    assert store.read("task-0006") is not None and store.open_result("task-0006") is None  # body gone
    assert sorted(p.name for p in (tmp_path / "task-0006").iterdir()) == [META]
    clock.now += 100
    assert store.sweep() == 1 and store.read("task-0006") is None and not (tmp_path / "task-0006").exists()


def test_store_lost_job_and_lease_renewal(tmp_path):
    clock = FakeClock()
    store = TaskResults(tmp_path, ttl_s=60, lease_s=30, clock=clock)
    store.create("task-0007", "owner-a")
    clock.now += 29
    store.renew("task-0007")                # a live job renews before its lease runs out
    clock.now += 29
    record = store.read("task-0007")
    assert not record.lost(clock()) and record.expires == clock() - 29 + 30 + 60
    clock.now += 2                          # no renewal for 31 s: its replica is gone
    record = store.read("task-0007")
    assert record.lost(clock()) and not record.expired(clock())   # failed, not yet gone
    clock.now += 60
    assert store.read("task-0007").expired(clock())


def test_store_readers_never_see_a_partial_record_or_result(tmp_path):
    """A writer replaces the record and publishes results in a loop while a reader reads: every read
    is a whole record, and a result is either absent or complete."""
    store = TaskResults(tmp_path, ttl_s=60)
    body = b"x" * 300_000
    stop = threading.Event()
    errors = []

    def writer():
        i = 0
        while not stop.is_set():
            task_id = f"task-w{i:05d}"
            store.create(task_id, "owner-a")
            store.renew(task_id)
            w = store.writer(task_id)
            w.start(200, [])
            w.write(body)
            store.finish(task_id, w, 200, "")
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            for folder in list(tmp_path.iterdir()):
                try:
                    record = store.read(folder.name)
                except Exception as exc:   # pragma: no cover - the failure this test looks for
                    errors.append(repr(exc))
                    continue
                reads += 1
                if record is not None and record.done:
                    stored = store.open_result(folder.name)
                    try:
                        if stored.file.read() != body:
                            errors.append(f"{folder.name}: partial result")
                    finally:
                        stored.close()
    finally:
        stop.set()
        thread.join()
    assert reads > 50 and not errors, errors[:5]


# ---------------------------------------------------------------------------------------------
# The Prefer: respond-async layer and the task routes


class GatedVocoder(FakeVocoder):
    """A fake vocoder that holds each request until ``release`` is set."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.release = threading.Event()
        self.started = threading.Event()

    async def vocode(self, payload):
        self.started.set()
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        return await super().vocode(payload)


@pytest.fixture
def async_app(tmp_path):
    gated = GatedVocoder()
    app, services = make_app({"BigVGAN": FakeVocoder(), "HiFiGAN": gated,
                              "NSFHiFiGAN": FakeVocoder(fail_with=RuntimeError("boom"))},
                             storage_dir=str(tmp_path), max_async_jobs=2, rate_limit_per_minute=3)
    with TestClient(app) as client:
        client.services = services
        yield client


def wait_done(client, task_id, headers, timeout=10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/api/tasks/{task_id}", headers=headers)
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("completed", "failed"):
            return r.json()
        assert time.monotonic() < deadline, r.json()
        time.sleep(0.02)


def test_async_request_answers_202_then_status_then_the_same_result(async_app):
    client, headers = async_app, key()
    files = {"audio": ("x.wav", wav_bytes(), "audio/wav")}
    sync = client.post("/api/vocoder/bigvgan", headers=headers, files=files)
    assert sync.status_code == 200
    r = client.post("/api/vocoder/bigvgan", headers={**headers, **ASYNC}, files=files)
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]
    assert r.json() == {"task_id": task_id, "status": "queued", "status_url": f"/api/tasks/{task_id}",
                        "result_url": f"/api/tasks/{task_id}/result"}
    assert r.headers["location"] == f"/api/tasks/{task_id}"
    assert r.headers["preference-applied"] == "respond-async" and r.headers["x-task-id"] == task_id
    assert r.headers["x-ratelimit-remaining"] == "1"       # counted like the synchronous request
    status = wait_done(client, task_id, headers)
    assert status["status"] == "completed" and status["progress"] == 1.0 and status["task_id"] == task_id
    result = client.get(f"/api/tasks/{task_id}/result", headers=headers)
    assert result.status_code == 200 and result.content == sync.content
    for name in ("content-type", "x-sample-rate", "x-audio-duration", "x-amphion-weights", "content-disposition"):
        assert result.headers[name] == sync.headers[name], name
    assert result.headers["x-task-id"] == task_id and "server-timing" in result.headers
    assert "x-ratelimit-limit" not in result.headers       # polling is not counted


def test_running_job_status_and_result_404_until_done(async_app):
    client, headers = async_app, key()
    gated = client.services["HiFiGAN"]
    r = client.post("/api/vocoder/hifigan", headers={**headers, **ASYNC, "X-Task-ID": "my-job-0001"},
                    files={"audio": ("x.wav", wav_bytes(), "audio/wav")})
    assert r.status_code == 202 and r.json()["task_id"] == "my-job-0001"
    assert gated.started.wait(5)
    status = client.get("/api/tasks/my-job-0001", headers=headers).json()
    assert status["status"] == "queued" and status["task_id"] == "my-job-0001"   # the route's own event
    r = client.get("/api/tasks/my-job-0001/result", headers=headers)
    assert r.status_code == 404 and "still running" in r.json()["detail"]
    # The same task id again while the job is kept: 409, for this key and any other.
    r = client.post("/api/vocoder/hifigan", headers={**headers, **ASYNC, "X-Task-ID": "my-job-0001"},
                    files={"audio": ("x.wav", wav_bytes(), "audio/wav")})
    assert r.status_code == 409 and "in use" in r.json()["detail"]
    gated.release.set()
    assert wait_done(client, "my-job-0001", headers)["status"] == "completed"
    assert client.get("/api/tasks/my-job-0001/result", headers=headers).status_code == 200


def test_other_keys_and_unknown_ids_get_404(async_app):
    client, headers = async_app, key()
    r = client.post("/api/vocoder/bigvgan", headers={**headers, **ASYNC}, files={"audio": ("x.wav", wav_bytes())})
    task_id = r.json()["task_id"]
    wait_done(client, task_id, headers)
    other = key()
    for path in (f"/api/tasks/{task_id}", f"/api/tasks/{task_id}/result", "/api/tasks/nonexistent-0001",
                 "/api/tasks/bad"):
        r = client.get(path, headers=other)
        assert r.status_code == 404 and "no such task" in r.json()["detail"], (path, r.text)
    assert client.get("/api/tasks/..%2F..%2Fetc/result", headers=other).status_code == 404   # no route at all
    assert client.get(f"/api/tasks/{task_id}").status_code == 401          # polling still needs a key


def test_bad_input_is_stored_as_the_routes_own_4xx(async_app):
    client, headers = async_app, key()
    # Validation runs in the background: the 202 comes first, the 422/415 is the result.
    r = client.post("/api/vocoder/bigvgan", headers={**headers, **ASYNC}, data={"response_format": "wav"})
    assert r.status_code == 202
    status = wait_done(client, r.json()["task_id"], headers)
    assert status["status"] == "failed" and "422" in status["detail"]
    result = client.get(f"/api/tasks/{r.json()['task_id']}/result", headers=headers)
    assert result.status_code == 422 and result.json()["detail"][0]["loc"] == ["body", "audio"]
    r = client.post("/api/vocoder/bigvgan", headers={**headers, **ASYNC},
                    files={"audio": ("x.wav", b"this is not audio at all" * 10)})
    status = wait_done(client, r.json()["task_id"], headers)
    result = client.get(f"/api/tasks/{r.json()['task_id']}/result", headers=headers)
    assert result.status_code == 415 and status["detail"] == result.json()["detail"]


def test_a_job_that_raises_is_stored_as_a_500_with_its_request_id(async_app):
    client, headers = async_app, key()
    r = client.post("/api/vocoder/generic", headers={**headers, **ASYNC},
                    data={"vocoder_name": "nsf_hifigan"}, files={"audio": ("x.wav", wav_bytes())})
    assert r.status_code == 202
    status = wait_done(client, r.json()["task_id"], headers)
    result = client.get(f"/api/tasks/{r.json()['task_id']}/result", headers=headers)
    assert result.status_code == 500 and "request id" in result.json()["detail"]
    assert status["status"] == "failed" and "boom" not in result.text


def test_refusals_before_the_202_come_directly(async_app):
    client, headers = async_app, key()
    r = client.post("/api/vocoder/bigvgan", headers=ASYNC, files={"audio": ("x.wav", wav_bytes())})
    assert r.status_code == 401
    big = b"\0" * (4 * 1024 * 1024)   # over the 1 MB + form allowance of make_app's limits
    r = client.post("/api/vocoder/bigvgan", headers={**headers, **ASYNC}, files={"audio": ("x.wav", big)})
    assert r.status_code == 413
    r = client.post("/api/vocoder/bigvgan", headers={**headers, **ASYNC, "X-Task-ID": "bad"},
                    files={"audio": ("x.wav", wav_bytes())})
    assert r.status_code == 400


def test_jobs_per_replica_are_bounded(async_app):
    client, headers = async_app, key()
    gated = client.services["HiFiGAN"]
    accepted = [client.post("/api/vocoder/hifigan", headers={**headers, **ASYNC},
                            files={"audio": ("x.wav", wav_bytes())}) for _ in range(2)]
    assert [r.status_code for r in accepted] == [202, 202]
    r = client.post("/api/vocoder/bigvgan", headers={**headers, **ASYNC}, files={"audio": ("x.wav", wav_bytes())})
    assert r.status_code == 503 and r.headers["retry-after"].isdigit() and "background jobs" in r.json()["detail"]
    # Synchronous requests are not affected.
    r = client.post("/api/vocoder/bigvgan", headers=headers, files={"audio": ("x.wav", wav_bytes())})
    assert r.status_code == 200
    gated.release.set()
    for r in accepted:
        assert wait_done(client, r.json()["task_id"], headers)["status"] == "completed"
    r = client.post("/api/vocoder/bigvgan", headers={**headers, **ASYNC}, files={"audio": ("x.wav", wav_bytes())})
    assert r.status_code == 202                             # the slots came back
    wait_done(client, r.json()["task_id"], headers)


def test_polling_is_not_rate_limited(async_app):
    client, headers = async_app, key()     # rate_limit_per_minute=3 in this app
    r = client.post("/api/vocoder/bigvgan", headers={**headers, **ASYNC}, files={"audio": ("x.wav", wav_bytes())})
    task_id = r.json()["task_id"]
    for _ in range(40):
        assert client.get(f"/api/tasks/{task_id}", headers=headers).status_code == 200
        assert client.get(f"/api/tasks/{task_id}/result", headers=headers).status_code in (200, 404)
    assert client.get(f"/api/tasks/{task_id}/result", headers=headers).status_code == 200


def test_expired_results_are_410(tmp_path):
    app, _ = make_app(storage_dir=str(tmp_path), task_ttl_s=0.5)
    headers = key()
    with TestClient(app) as client:
        r = client.post("/api/vocoder/bigvgan", headers={**headers, **ASYNC}, files={"audio": ("x.wav", wav_bytes())})
        task_id = r.json()["task_id"]
        while True:   # until completed (then past its TTL), or already expired on a slow machine
            r = client.get(f"/api/tasks/{task_id}", headers=headers)
            if r.status_code == 410:
                break
            assert r.status_code == 200, r.text
            if r.json()["status"] == "completed":
                time.sleep(0.6)
                break
            time.sleep(0.02)
        for path in (f"/api/tasks/{task_id}", f"/api/tasks/{task_id}/result"):
            r = client.get(path, headers=headers)
            assert r.status_code == 410 and "expired" in r.json()["detail"], r.text
        assert client.get(f"/api/tasks/{task_id}", headers=key()).status_code == 404   # still not another key's


def test_a_lost_job_reads_as_failed(tmp_path):
    """A job whose replica died stops renewing its lease: failed in the status, 503 from /result."""
    app, _ = make_app(storage_dir=str(tmp_path / "s"))
    headers = key()
    with TestClient(app) as client:
        owner = app.state.gate.keys.identify(headers["X-API-Key"])
        store = TaskResults(tmp_path / "s" / "tasks", ttl_s=600, lease_s=0.05)
        store.create("lost-job-0001", owner)
        time.sleep(0.1)
        status = client.get("/api/tasks/lost-job-0001", headers=headers).json()
        assert status["status"] == "failed" and status["detail"] == LOST_DETAIL
        r = client.get("/api/tasks/lost-job-0001/result", headers=headers)
        assert r.status_code == 503 and r.json()["detail"] == LOST_DETAIL


def test_which_requests_run_async():
    def scope(method="POST", prefer=b"respond-async", task_id="t" * 8):
        return {"type": "http", "method": method, "headers": [(b"prefer", prefer)] if prefer else [],
                "state": {"task_id": task_id} if task_id else {}}

    assert wants_async(scope())
    assert wants_async(scope(prefer=b"handling=lenient, Respond-Async; x=1, wait=10"))
    assert not wants_async(scope(prefer=b"return=minimal"))
    assert not wants_async(scope(prefer=None))
    assert not wants_async(scope(method="GET"))           # GET look-ups stay synchronous
    assert not wants_async(scope(task_id=None))           # not a model route (the gate gave no task id)


def test_openapi_documents_prefer_and_the_task_routes(async_app):
    doc = async_app.get("/api/openapi.json").json()
    post = doc["paths"]["/api/tts/maskgct"]["post"]
    assert "Prefer" in [p["name"] for p in post["parameters"]] and {"202", "409"} <= set(post["responses"])
    assert "Location" in post["responses"]["202"]["headers"]
    singers = doc["paths"]["/api/svc/vitssvc/singers"]["get"]
    assert "Prefer" not in [p["name"] for p in singers["parameters"]]
    for path in ("/api/tasks/{task_id}", "/api/tasks/{task_id}/result"):
        op = doc["paths"][path]["get"]
        assert op["security"] and {"404", "410"} <= set(op["responses"])
        assert "X-Task-ID" not in [p["name"] for p in op["parameters"]]

"""Faults under load: a model replica (an entry, a part) and an ingress replica killed through Ray's API,
and the shared state actor lost. Serve replaces replicas; a request in flight on a killed model replica
answers 503 naming a retry (never a 500 or a hang); later requests succeed; rate limits and progress
recover. Each test waits until Serve reports every deployment healthy again, for the tests after it."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.test_integration import wav_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from load_test import ROUTES, format_report, run_load  # noqa: E402

pytestmark = pytest.mark.integration

APP = "amphion"


def _replica_actor_names(deployment: str) -> list[str]:
    """The named actors of ``deployment``'s live replicas (``SERVE_REPLICA::amphion#<deployment>#<id>``)."""
    import ray

    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["namespace"] == "serve" and a["name"].split("::", 1)[-1].startswith(f"{APP}#{deployment}#"))


def _kill_one_replica(deployment: str) -> str:
    import ray

    names = _replica_actor_names(deployment)
    assert names, f"no replica of {deployment} found"
    ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)
    return names[0]


def _wait_healthy(timeout_s: float = 120.0) -> None:
    """Until Serve reports the application and every deployment HEALTHY (the replacement replicas up)."""
    from ray import serve

    deadline = time.monotonic() + timeout_s
    while True:
        app = serve.status().applications.get(APP)
        bad = {} if app is None else {name: d.status for name, d in app.deployments.items()
                                      if str(getattr(d.status, "value", d.status)) != "HEALTHY"}
        if app is not None and str(getattr(app.status, "value", app.status)) == "RUNNING" and not bad:
            return
        assert time.monotonic() < deadline, f"not healthy after {timeout_s:.0f} s: {bad}"
        time.sleep(1)


class _Background:
    """``run_load`` in a thread (light: a few clients over the quick routes) while a test breaks things."""

    def __init__(self, served, keys, clients=4, duration_s=60.0, routes=None):
        self.report = None
        self.error = None
        self._stop = None
        self._loop = None

        def target():
            async def go():
                self._stop = asyncio.Event()
                self._loop = asyncio.get_running_loop()
                return await run_load(served.base_url, keys, clients=clients, duration_s=duration_s, max_upload_s=3,
                                      routes=routes or ROUTES[:3], sample_rss=False, stop=self._stop,
                                      progress_timeout_s=30, request_timeout_s=90)
            try:
                self.report = asyncio.run(go())
            except BaseException as exc:  # surfaced by finish()
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def finish(self) -> dict:
        while self._loop is None and self.thread.is_alive():
            time.sleep(0.05)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(150)
        assert not self.thread.is_alive(), "the background load hung"
        if self.error:
            raise self.error
        print(format_report(self.report))
        return self.report


def _slow_request_killed_mid_flight(served, path, data, files, deployment) -> tuple[httpx.Response, str]:
    """POST a request with its progress socket open; at its first 'running' event kill one replica of
    ``deployment`` (found beforehand: the kill itself is immediate); the response and the replica killed."""
    import ray
    import websockets

    name = _replica_actor_names(deployment)[0]
    replica = ray.get_actor(name, namespace="serve")
    key = served.fresh_key()
    task_id = f"fault-{deployment}-{time.time_ns()}"
    killed = {}

    async def scenario():
        async def watch():
            async with websockets.connect(f"{served.ws_url}/ws/progress/{task_id}",
                                          additional_headers={"X-API-Key": key}) as ws:
                async for message in ws:
                    if json.loads(message)["status"] == "running" and not killed:
                        ray.kill(replica, no_restart=True)
                        killed["name"] = name
        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.3)
        r = await asyncio.to_thread(httpx.post, served.base_url + path, headers={"X-API-Key": key, "X-Task-ID": task_id},
                                    data=data, files=files, timeout=120)
        try:
            await asyncio.wait_for(watcher, 10)
        except asyncio.TimeoutError:
            watcher.cancel()
        return r

    return asyncio.run(scenario()), killed.get("name", "")


TTS = ("/api/tts/maskgct", {"text": "Hello there, nice to meet you again today.", "reference_text": "Hi there.",
                            "language": "en", "target_len": "6.0"})


@pytest.mark.parametrize("deployment", ["MaskGCT", "MaskGCTT2S"])
def test_model_replica_killed_mid_request_answers_503_retry(served, deployment):
    """The entry (ingress -> entry hop, serve_app/backend.py) and a part (entry -> part hop, PartHandles.call)."""
    load = _Background(served, [served.fresh_key() for _ in range(3)])
    try:
        path, data = TTS
        r, killed = _slow_request_killed_mid_flight(served, path, data,
                                                    {"reference_audio": ("ref.wav", wav_bytes(2.0))}, deployment)
        print(deployment, killed, r.status_code, r.text[:300])
        if killed:
            assert r.status_code in (200, 503), r.text   # 200 only if it finished before the kill landed
            if r.status_code == 503:
                assert "retry" in r.json()["detail"].lower(), r.text
    finally:
        report = load.finish()
    assert killed, "the request finished before a replica could be killed"
    assert report["ok"], report["problems"]
    _wait_healthy()
    ok = httpx.post(served.base_url + path, headers={"X-API-Key": served.fresh_key()}, data=data,
                    files={"reference_audio": ("ref.wav", wav_bytes(2.0))}, timeout=120)
    assert ok.status_code == 200, ok.text


def test_ingress_replica_killed_under_load(served):
    load = _Background(served, [served.fresh_key() for _ in range(3)], clients=6)
    time.sleep(3)
    killed = _kill_one_replica("AmphionIngress")
    time.sleep(8)
    report = load.finish()
    print("killed", killed)
    # Requests in flight on the killed ingress replica get Ray Serve's own proxy answer, a plain-text
    # 500 (its proxy maps only 408/429/503 from a dead replica; nothing in the app sees them). Known
    # limitation, bounded here by the number of clients; every other answer must keep the contract.
    proxy_500 = [p for p in report["problems"] if p.endswith("HTTP 500: Internal Server Error")]
    # A progress socket served by the killed replica dies with it (the TCP connection is gone, no close
    # frame): the client reconnects to the other replica and reads the task's events from the shared
    # state. Also bounded by the number of clients.
    sockets_lost = [p for p in report["problems"] if "progress socket: ConnectionClosed" in p]
    assert len(proxy_500) <= 6 and len(sockets_lost) <= 6, report["problems"]
    assert report["problem_count"] == len(proxy_500) + len(sockets_lost), report["problems"]
    _wait_healthy()
    for _ in range(4):   # both ingress replicas (the new one included) serve
        r = httpx.post(served.base_url + "/api/vocoder/hifigan", headers={"X-API-Key": served.fresh_key()},
                       files={"audio": ("a.wav", wav_bytes(0.5))}, timeout=60)
        assert r.status_code == 200, r.text


def test_state_actor_lost_limits_and_progress_recover(served):
    import ray

    from serve_app.state import STATE_ACTOR_NAME, STATE_NAMESPACE

    key = served.fresh_key()
    path, data = TTS
    tts = dict(data, target_len="1.0")
    # the model replicas hold a handle to the actor from an earlier publish
    r = httpx.post(served.base_url + path, headers={"X-API-Key": key}, data=tts,
                   files={"reference_audio": ("ref.wav", wav_bytes(2.0))}, timeout=120)
    assert r.status_code == 200, r.text
    ray.kill(ray.get_actor(STATE_ACTOR_NAME, namespace=STATE_NAMESPACE), no_restart=True)
    # the first request after the loss: its events (the model replica's first after the
    # replacement included) all reach the socket
    task_id = f"fault-after-{time.time_ns()}"
    r, events = served.with_progress(key, task_id, lambda: httpx.post(
        served.base_url + path, headers={"X-API-Key": key, "X-Task-ID": task_id}, data=tts,
        files={"reference_audio": ("ref.wav", wav_bytes(2.0))}, timeout=120))
    assert r.status_code == 200, r.text
    statuses = [e["status"] for e in events]
    assert statuses[-1] == "completed", statuses
    assert "running" in statuses, statuses          # the model replica's events arrived
    # rate limits count again on the new actor: the 11th request in a minute is refused
    limit_key = served.fresh_key()
    codes = [httpx.post(served.base_url + "/api/vocoder/hifigan", headers={"X-API-Key": limit_key}, timeout=60,
                        files={"audio": ("a.wav", wav_bytes(0.2))}).status_code for _ in range(11)]
    assert codes[:10] == [200] * 10 and codes[10] == 429, codes
    _wait_healthy()

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

from fault_injection import (  # noqa: E402
    INGRESS, kill_one_replica, kill_state_actor, replica_actor_names, wait_healthy,
)
from load_test import ROUTES, format_report, run_load  # noqa: E402

pytestmark = pytest.mark.integration


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


def _slow_request_killed_mid_flight(served, path, data, files, deployment,
                                    stage: str | None = None) -> tuple[httpx.Response, str]:
    """POST a request with its progress socket open; at its first 'running' event (of ``stage``, when
    given: a step the part replica itself is computing) kill one replica of ``deployment`` (found
    beforehand: the kill itself is immediate); the response and the replica killed."""
    import ray
    import websockets

    name = replica_actor_names(deployment)[0]
    replica = ray.get_actor(name, namespace="serve")
    key = served.fresh_key()
    task_id = f"fault-{deployment}-{time.time_ns()}"
    killed = {}

    async def scenario():
        async def watch():
            async with websockets.connect(f"{served.ws_url}/ws/progress/{task_id}",
                                          additional_headers={"X-API-Key": key}) as ws:
                async for message in ws:
                    event = json.loads(message)
                    if event["status"] == "running" and stage in (None, event["stage"]) and not killed:
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


@pytest.mark.parametrize("deployment, stage", [("MaskGCT", None), ("MaskGCTT2S", "t2s")])
def test_model_replica_killed_mid_request_answers_503_retry(served, deployment, stage):
    """The entry (ingress -> entry hop, serve_app/backend.py) and a part killed while it computes the
    request's T2S steps (entry -> part hop, PartHandles.call)."""
    load = _Background(served, [served.fresh_key() for _ in range(3)])
    try:
        path, data = TTS
        # The most T2S steps the route allows: the part is mid-call for as long as possible when the
        # kill, triggered by its first step's event, lands.
        r, killed = _slow_request_killed_mid_flight(served, path, dict(data, n_timesteps="100"),
                                                    {"reference_audio": ("ref.wav", wav_bytes(2.0))}, deployment,
                                                    stage)
        print(deployment, killed, r.status_code, r.text[:300])
    finally:
        report = load.finish()
    assert killed, "the request finished before a replica could be killed"
    assert r.status_code == 503, r.text
    assert "retry" in r.json()["detail"].lower(), r.text
    assert report["ok"], report["problems"]
    wait_healthy()
    ok = httpx.post(served.base_url + path, headers={"X-API-Key": served.fresh_key()}, data=data,
                    files={"reference_audio": ("ref.wav", wav_bytes(2.0))}, timeout=120)
    assert ok.status_code == 200, ok.text


def test_ingress_replica_killed_under_load(served):
    load = _Background(served, [served.fresh_key() for _ in range(3)], clients=6)
    time.sleep(3)
    killed = kill_one_replica(INGRESS)
    time.sleep(8)
    report = load.finish()
    print("killed", killed)
    # Requests in flight on the killed ingress replica get Ray Serve's own proxy answer, a plain-text
    # 500 (its proxy maps only 408/429/503 from a dead replica; nothing in the app sees them). Known
    # limitation, bounded here by the number of clients; every other answer must keep the contract.
    # A progress socket served by the killed replica dies with it (the TCP connection is gone, no close
    # frame): the client reconnects to the other replica and reads the task's events from the shared
    # state. Both kinds are bounded by the number of clients.
    casualties = report["casualties"]
    assert casualties["proxy_500"] <= 6 and casualties["socket_lost"] <= 6, report["problems"]
    assert report["problem_count"] == sum(casualties.values()), report["problems"]
    wait_healthy()
    for _ in range(4):   # both ingress replicas (the new one included) serve
        r = httpx.post(served.base_url + "/api/vocoder/hifigan", headers={"X-API-Key": served.fresh_key()},
                       files={"audio": ("a.wav", wav_bytes(0.5))}, timeout=60)
        assert r.status_code == 200, r.text


def test_state_actor_lost_limits_and_progress_recover(served):
    key = served.fresh_key()
    path, data = TTS
    tts = dict(data, target_len="1.0")
    # the model replicas hold a handle to the actor from an earlier publish
    r = httpx.post(served.base_url + path, headers={"X-API-Key": key}, data=tts,
                   files={"reference_audio": ("ref.wav", wav_bytes(2.0))}, timeout=120)
    assert r.status_code == 200, r.text
    kill_state_actor()
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
    wait_healthy()

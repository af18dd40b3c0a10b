"""Shared fixtures. The application runs on a local Ray started once per test session, lazily:
only when a test asks for `served`."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_common import SHARED_DATA, shared_data_env  # noqa: E402

# The suite runs the models eagerly: compiling models.core.compute's kernels costs up to a minute
# on first use (AMPHION_COMPILE=1 runs the suite with them). Set before any replica starts.
COMPILE_SETTING = {"AMPHION_COMPILE": os.environ.setdefault("AMPHION_COMPILE", "0")}

INTEGRATION_KEYS = [f"it-key-{i:03d}" for i in range(300)]
# Small upload limits keep the 413 tests cheap; the numbers are configuration, not code.
# Vevo, VevoSing and Metis' stage-1 models run inline (as the local profile does); MaskGCT's parts
# (shared by MaskGCT and Metis) and the SVC parts (front ends shared by four models) as separate
# deployments (as production does): both paths through real handles.
INTEGRATION_ARGS = dict(weights="tiny", dev_mode=False, torch_threads=1, max_content_mb=3,
                        max_reference_mb=1, max_content_seconds=30, max_reference_seconds=10,
                        body_timeout_s=5, require_content_length=True,
                        inline_parts=["vevo", "vevosing", "metis"],
                        storage_dir=str(Path(tempfile.mkdtemp(prefix="amphion-storage-"))))
INGRESS_REPLICAS = 2
# Reference data the application reads (tests may use ../shared; the product fetches its own copies):
# the G2P tables, DualCodec-VALL-E's text vocabulary, the built-in default voice.
G2P_DATA = SHARED_DATA["AMPHION_G2P_DATA"]
VALLE_TEXT = SHARED_DATA["AMPHION_VALLE_TEXT_DIR"]
VOICE_DATA = SHARED_DATA["AMPHION_VOICE_DATA"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, base_url: str, ws_url: str):
        self.base_url = base_url
        self.ws_url = ws_url
        self._keys = iter(INTEGRATION_KEYS)

    def fresh_key(self) -> str:
        """A key no other test has used: each test gets its own rate-limit budget."""
        return next(self._keys)

    def with_progress(self, key: str, task_id: str, call):
        """``(call()'s response, the task's progress events)``: the socket is open before the request
        starts and read until the server closes it (the task's final event)."""
        import asyncio
        import json

        import websockets

        async def scenario():
            events = []

            async def listen():
                async with websockets.connect(f"{self.ws_url}/ws/progress/{task_id}",
                                              additional_headers={"X-API-Key": key}) as ws:
                    async for message in ws:
                        events.append(json.loads(message))

            listener = asyncio.create_task(listen())
            await asyncio.sleep(0.5)
            response = await asyncio.to_thread(call)
            await asyncio.wait_for(listener, 30)
            return response, events

        return asyncio.run(scenario())


@pytest.fixture(scope="session")
def served():
    import httpx
    import ray
    from ray import serve

    from deployments import topology
    from serve_app.application import REPLICA_ENV, AppArgs, compose

    os.environ["AMPHION_API_KEYS"] = ",".join(INTEGRATION_KEYS)
    os.environ.update(REPLICA_ENV)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    extra_env = shared_data_env({})
    os.environ.update(extra_env)
    # The suite tests our recovery from kills on purpose (test_faults), not the choice of victims
    # of Ray's memory monitor (95 % by default): on a 24 GB machine shared with the suite's own
    # process, the margin above the application's peak stays ours.
    os.environ.setdefault("RAY_memory_usage_threshold", "0.99")
    port = _free_port()
    # Logical CPUs: enough for every replica to be scheduled; the real load is what the tests send.
    ray.init(num_cpus=32, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"AMPHION_API_KEYS": os.environ["AMPHION_API_KEYS"], **REPLICA_ENV,
                                          **COMPILE_SETTING, **extra_env}})
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(compose(AppArgs(**INTEGRATION_ARGS), ingress_replicas=INGRESS_REPLICAS),
                  name="amphion", route_prefix="/", blocking=False)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                r = httpx.get(base + "/api/health", timeout=5)
                models = r.json().get("models", {})
                if r.status_code == 200 and all(models[key]["status"] in ("ready", "unavailable")
                                                for key in topology.built_model_keys()):
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the application did not become healthy within 180 s")
            time.sleep(1)
        yield Served(base, f"ws://127.0.0.1:{port}")
    finally:
        serve.shutdown()
        ray.shutdown()


# Unit tests that are slow by design (stress and memory checks): marked `slow`, so that `make test-fast`
# leaves them out; `make test` runs them. Listed here rather than in their files; a test that is
# renamed simply stops being left out.
SLOW_TESTS = {
    "tests/test_g2p.py::test_deterministic_and_in_vocabulary",  # 8 threads, a second G2P: ~8 s
    "tests/test_audio_io.py::test_decoding_100mb_wav_keeps_peak_rss_low",  # writes a 100 MiB WAV: ~3 s
}


def pytest_collection_modifyitems(session, config, items):
    """Marks the SLOW_TESTS `slow`. The state-loss test kills the shared state actor: it runs after
    every other test, so that no other test depends on which replicas have already noticed the
    replacement."""
    for item in items:
        if item.nodeid.split("[", 1)[0] in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: "test_integration_state_loss" in item.nodeid)

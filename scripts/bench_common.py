"""Shared pieces of the benchmark scripts: start the application, generate load, summarise."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench_results"
BENCH_KEY = "bench-key-0001"
# Benchmarks measure serving, not the rate limiter's refusals.
NO_LIMITS = dict(rate_limit_per_minute=10**9, rate_limit_per_hour=10**9)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def speech_like_wav(seconds: float, sr: int = 24000, channels: int = 1) -> bytes:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(0.25 / k * np.sin(k * phase) for k in range(1, 8)) + 0.01 * rng.standard_normal(t.shape)
    x = x.astype(np.float32)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    buf = io.BytesIO()
    sf.write(buf, data, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def percentiles(samples_s: list[float]) -> dict:
    ms = sorted(x * 1000 for x in samples_s)
    def pct(p):
        return ms[min(len(ms) - 1, int(round(p / 100 * (len(ms) - 1))))]
    return {"n": len(ms), "p50_ms": round(pct(50), 2), "p99_ms": round(pct(99), 2),
            "mean_ms": round(statistics.fmean(ms), 2)}


async def load(call, concurrency: int, total: int, warmup: int = 5) -> tuple[list[float], float]:
    """Run `call()` `total` times from `concurrency` workers; (latencies, wall seconds)."""
    for _ in range(warmup):
        await call()
    latencies: list[float] = []
    remaining = iter(range(total))

    async def worker():
        for _ in remaining:
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return latencies, time.perf_counter() - t0


def http_caller(client, url: str, wav: bytes, data: dict | None = None):
    async def call():
        r = await client.post(url, headers={"X-API-Key": BENCH_KEY}, data=data or {},
                              files={"audio": ("input.wav", wav, "audio/wav")})
        if r.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {r.status_code}: {r.text[:200]}")
    return call


def start_serve(args: dict, **compose_kwargs) -> str:
    """The whole application on a local Ray; returns its base URL."""
    import httpx
    import ray
    from ray import serve

    from deployments import topology
    from serve_app.application import REPLICA_ENV, AppArgs, compose

    os.environ["AMPHION_API_KEYS"] = BENCH_KEY
    os.environ.update(REPLICA_ENV)
    # Logical CPUs: enough for every replica of the whole application to be scheduled (as the tests).
    ray.init(num_cpus=32, include_dashboard=False, logging_level="ERROR",
             runtime_env={"env_vars": {"AMPHION_API_KEYS": BENCH_KEY, **REPLICA_ENV}})
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(compose(AppArgs(**args), **compose_kwargs), name="amphion", route_prefix="/", blocking=False)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            body = httpx.get(base + "/api/health", timeout=5).json()
            if all(body["models"][key]["status"] in ("ready", "unavailable") for key in topology.built_model_keys()):
                return base
        except Exception:
            pass
        time.sleep(1)
    raise RuntimeError("application did not become ready")


def stop_serve() -> None:
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def save(name: str, result: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))

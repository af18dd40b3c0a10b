"""Serving overhead of /api/vocoder/hifigan (tiny weights, 2 s of audio), measured in one run:

  in-process   VocoderService.vocode() called directly (same batching, same thread settings)
  plain        the same FastAPI app in one uvicorn process, vocoders in-process
  serve        the Ray Serve application (proxy -> ingress -> HiFiGAN deployment)

at concurrency 1 and 8. Target: serve adds at most 10 ms p50 over in-process at concurrency 1.

    .venv/bin/python scripts/bench_overhead.py [--requests 80]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import httpx

from bench_common import (NO_LIMITS, ROOT, free_port, http_caller, load, percentiles, save, speech_like_wav,
                          start_serve, stop_serve)

THREADS = 1


def in_process(wav: bytes, requests: int) -> dict:
    from deployments.vocoder import VocoderService
    from serve_app.audio_io import decode_audio
    import io

    service = VocoderService("hifigan", weights="tiny", torch_threads=THREADS, store=None)
    audio = decode_audio(io.BytesIO(wav), field="audio", target_sr=24000, max_seconds=600)

    async def call():
        await service.vocode({"audio": audio, "subtype": "PCM_16", "task_id": None})

    async def run():
        out = {}
        for c in (1, 8):
            lat, wall = await load(call, c, requests)
            out[f"c{c}"] = {**percentiles(lat), "throughput_rps": round(len(lat) / wall, 2)}
        return out

    return asyncio.run(run())


async def http_load(url: str, wav: bytes, requests: int) -> dict:
    out = {}
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=16)) as client:
        call = http_caller(client, url, wav)
        for c in (1, 8):
            lat, wall = await load(call, c, requests)
            out[f"c{c}"] = {**percentiles(lat), "throughput_rps": round(len(lat) / wall, 2)}
    return out


def plain(wav: bytes, requests: int) -> dict:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "plain_fastapi_server.py"),
                             "--port", str(port), "--threads", str(THREADS)],
                            env={**__import__("os").environ, "AMPHION_API_KEYS": "bench-key-0001"})
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                    break
            except Exception:
                time.sleep(0.5)
        return asyncio.run(http_load(base + "/api/vocoder/hifigan", wav, requests))
    finally:
        proc.terminate()
        proc.wait(30)


def serve(wav: bytes, requests: int) -> dict:
    base = start_serve({"weights": "tiny", "dev_mode": False, "torch_threads": THREADS, **NO_LIMITS})
    try:
        return asyncio.run(http_load(base + "/api/vocoder/hifigan", wav, requests))
    finally:
        stop_serve()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=80)
    opts = parser.parse_args()
    wav = speech_like_wav(2.0)
    result = {"what": "/api/vocoder/hifigan, tiny weights, 2 s of 24 kHz audio, torch threads 1",
              "in_process": in_process(wav, opts.requests),
              "plain_fastapi": plain(wav, opts.requests),
              "serve": serve(wav, opts.requests)}
    for c in ("c1", "c8"):
        base = result["in_process"][c]["p50_ms"]
        result[f"added_p50_ms_{c}"] = {
            "plain_fastapi": round(result["plain_fastapi"][c]["p50_ms"] - base, 2),
            "serve": round(result["serve"][c]["p50_ms"] - base, 2),
        }
    result["target"] = "serve adds <= 10 ms p50 over in-process (c1)"
    result["meets_target"] = result["added_p50_ms_c1"]["serve"] <= 10
    save("overhead", result)


if __name__ == "__main__":
    main()

"""Dynamic batching: throughput of /api/vocoder/hifigan at concurrency 8 with batching on
(max_batch_size 8) as a ratio to max_batch_size 1, in the same run on the same application.

    .venv/bin/python scripts/bench_batching.py [--requests 120] [--seconds 2.0]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx

from bench_common import NO_LIMITS, http_caller, load, percentiles, save, speech_like_wav, start_serve, stop_serve

ARGS = {"weights": "tiny", "dev_mode": False, "torch_threads": 1, **NO_LIMITS}


def vocoder_options(user_config: dict) -> dict:
    """Serve options giving every vocoder deployment this batching ``user_config``."""
    from deployments.vocoder import FAMILY

    return {entry.name: {"user_config": user_config} for entry in FAMILY.entries}


def redeploy(user_config: dict) -> None:
    """A lightweight update: only user_config changes, replicas keep running and reconfigure."""
    from ray import serve

    from serve_app.application import AppArgs, compose

    serve.run(compose(AppArgs(**ARGS), options=vocoder_options(user_config)), name="amphion", route_prefix="/",
              blocking=False)
    time.sleep(3)


async def measure(base: str, wav: bytes, requests: int) -> dict:
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=16)) as client:
        sizes = []

        async def call():
            r = await client.post(base + "/api/vocoder/hifigan", headers={"X-API-Key": "bench-key-0001"},
                                  files={"audio": ("input.wav", wav, "audio/wav")})
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")

        lat, wall = await load(call, 8, requests, warmup=8)
        return {**percentiles(lat), "throughput_rps": round(len(lat) / wall, 2)}


def model_level(seconds: float) -> dict:
    """The same vocoder in-process, no serving: one forward of 8 items against 8 forwards of 1.
    This bounds what any serving-level batching can gain on this hardware."""
    import io

    import numpy as np
    import torch

    from models.vocoders import load_vocoder
    from serve_app.audio_io import decode_audio

    torch.set_num_threads(1)
    v = load_vocoder("hifigan", "tiny")
    mel = v.analyse(decode_audio(io.BytesIO(speech_like_wav(seconds)), field="audio", target_sr=24000,
                                 max_seconds=60))
    out = {}
    for size in (1, 8):
        v.vocode([mel] * size)
        t0 = time.perf_counter()
        for _ in range(3):
            v.vocode([mel] * size)
        out[f"batch_{size}_ms_per_item"] = round((time.perf_counter() - t0) / 3 / size * 1000, 1)
    out["ratio"] = round(out["batch_1_ms_per_item"] / out["batch_8_ms_per_item"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--seconds", type=float, default=2.0)
    opts = parser.parse_args()
    wav = speech_like_wav(opts.seconds)
    batched_cfg = {"max_batch_size": 8, "batch_wait_timeout_s": 0.0}
    single_cfg = {"max_batch_size": 1, "batch_wait_timeout_s": 0.0}
    base = start_serve(ARGS, options=vocoder_options(batched_cfg))
    try:
        result = {"what": f"/api/vocoder/hifigan, tiny weights, {opts.seconds} s of audio, concurrency 8"}
        # Alternate the two settings twice so drift on a shared machine hits both alike.
        runs = {"batched": [], "unbatched": []}
        for _ in range(2):
            for name, cfg in (("batched", batched_cfg), ("unbatched", single_cfg)):
                redeploy(cfg)
                runs[name].append(asyncio.run(measure(base, wav, opts.requests)))
        for name, rs in runs.items():
            result[name] = {"runs": rs, "throughput_rps": round(sum(r["throughput_rps"] for r in rs) / len(rs), 2)}
        result["ratio"] = round(result["batched"]["throughput_rps"] / result["unbatched"]["throughput_rps"], 2)
        result["model_level_in_process"] = model_level(opts.seconds)
        result["target"] = ">= 1.5x"
        result["meets_target"] = result["ratio"] >= 1.5
        save("batching", result)
    finally:
        stop_serve()


if __name__ == "__main__":
    main()

"""MaskGCT cost on CPU, measured in one run:

  t2s_step   one T2S masked-generative decoding step at the official size (hidden 1536, 16 layers,
             random float32 weights): a 10 s target (500 frames), a 3 s prompt (150 frames) and
             150 phones; cond + uncond passes (CFG 2.5) as the reference runs them; seconds per step
             (median of a few `step_logits` calls), torch on every core
  memory     peak RSS of a process that builds every MaskGCT component at the official size with
             random float32 weights (w2v-bert-2.0 cut at layer 17 as the pipeline loads it, semantic
             codec, acoustic codec encoder + decoder, T2S, S2A 1-layer and full); parameters each
  route      /api/tts/maskgct end to end with tiny weights (3 s reference, ~10 words, target_len 3 s,
             25 T2S steps, fixed seed) at concurrency 1: p50/p99 latency and real-time factor,
             against `MaskGCTPipeline.generate()` in-process with the same inputs

The official-size parts each run in a child process (so their memory and thread settings stay
out of the serving run); results go to bench_results/maskgct.json.

    .venv/bin/python scripts/bench_maskgct.py [--step-repeats 4] [--requests 10] [--skip-route] [--wait-quiet 60]

The machine may be shared: each part first waits (up to --wait-quiet s) for the CPUs to go idle and
every timing reports how many cores other processes kept busy meanwhile (`other_busy_cores`);
`min` figures are the least disturbed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_common import NO_LIMITS, ROOT, SHARED_DATA, percentiles, save, speech_like_wav

G2P_DATA = SHARED_DATA["AMPHION_G2P_DATA"]

THREADS = os.cpu_count() or 1

# The route's inputs (and the in-process comparison's).
REFERENCE_SECONDS = 3.0
REFERENCE_TEXT = "This is a short reference sentence for the voice."
TEXT = "The quick brown fox jumps over the lazy dog near the quiet river."  # 13 words
TARGET_LEN_S = 3.0
SEED = 1234
# Form defaults of POST /api/tts/maskgct, passed explicitly to the in-process call too.
ROUTE_DEFAULTS = dict(n_timesteps=25, cfg=2.5, temperature=0.7)

# Official-size T2S step shape.
TARGET_FRAMES = 500   # 10 s at 50 Hz
PROMPT_FRAMES = 150   # 3 s
N_PHONES = 150


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = fields[3] + fields[4]                       # idle + iowait
    return sum(fields) - idle, sum(fields)


class CpuWindow:
    """How busy the machine was over a measurement, and how much of that was this process: the
    machine is shared (other people's test runs), so every timing carries its contention figures."""

    def __enter__(self):
        self.wall0, self.own0, self.sys0 = time.perf_counter(), time.process_time(), _cpu_jiffies()[0]
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.wall0
        busy = (_cpu_jiffies()[0] - self.sys0) / os.sysconf("SC_CLK_TCK") / wall
        own = (time.process_time() - self.own0) / wall
        self.figures = {"machine_busy_cores": round(busy, 2), "own_process_cores": round(own, 2),
                        "other_busy_cores": round(max(0.0, busy - own), 2)}
        return False


def wait_quiet(max_wait_s: float, threshold_cores: float = 0.3) -> dict:
    """Wait (up to max_wait_s) until the machine has been nearly idle for 3 s."""
    t0 = time.perf_counter()
    while True:
        b0, w0 = _cpu_jiffies()[0], time.perf_counter()
        time.sleep(3)
        busy = (_cpu_jiffies()[0] - b0) / os.sysconf("SC_CLK_TCK") / (time.perf_counter() - w0)
        waited = time.perf_counter() - t0
        if busy < threshold_cores or waited >= max_wait_s:
            return {"waited_s": round(waited, 1), "busy_cores_before": round(busy, 2),
                    "quiet": busy < threshold_cores, "loadavg_1m": float(Path("/proc/loadavg").read_text().split()[0])}


def _mib(kb: int) -> float:
    return round(kb / 1024, 1)


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# Part 1: one T2S step at the official size (child process)
# ---------------------------------------------------------------------------------------------


def child_t2s_step(repeats: int) -> dict:
    import torch

    from models.maskgct.generation_configs import OFFICIAL_T2S
    from models.maskgct.t2s import build_t2s_model

    torch.set_num_threads(THREADS)
    t0 = time.perf_counter()
    # Seeded random weights; built once in place (the builder's .to() is a no-op on CPU float32).
    model = build_t2s_model(OFFICIAL_T2S, seed=0, device="cpu", dtype=torch.float32)
    build_s = time.perf_counter() - t0
    cfg = OFFICIAL_T2S
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, cfg.cond_codebook_size, (1, PROMPT_FRAMES), generator=gen)
    phones = torch.randint(0, cfg.phone_padding_idx, (1, N_PHONES), generator=gen)
    seq = torch.randint(0, cfg.cond_codebook_size, (1, TARGET_FRAMES), generator=gen)
    mask = torch.rand(1, TARGET_FRAMES, generator=gen) < 0.5   # a mid-decoding step: half still masked
    times, load = [], []
    for i in range(repeats + 1):                                # the first call is a warm-up
        with CpuWindow() as window:
            t0 = time.perf_counter()
            logits, cond, uncond = model.step_logits(prompt, phones, seq, mask, 0.5, cfg=2.5, rescale_cfg=0.75)
            dt = time.perf_counter() - t0
        if i:
            times.append(dt)
            load.append(window.figures["other_busy_cores"])
    assert logits.shape == (1, TARGET_FRAMES, cfg.cond_codebook_size) and uncond is not None
    assert bool(torch.isfinite(logits).all())
    return {
        "config": cfg.to_dict(),
        "params": _params(model),
        "shape": {"target_frames": TARGET_FRAMES, "prompt_frames": PROMPT_FRAMES, "phones": N_PHONES,
                  "cond_pass_tokens": N_PHONES + PROMPT_FRAMES + TARGET_FRAMES, "uncond_pass_tokens": TARGET_FRAMES},
        "torch_threads": torch.get_num_threads(),
        "build_s": round(build_s, 2),
        "step_s_samples": [round(t, 3) for t in times],
        "step_s_median": round(statistics.median(times), 3),
        "step_s_min": round(min(times), 3),
        "other_busy_cores_per_sample": load,
        "t2s_25_steps_s_estimate": round(25 * statistics.median(times), 1),
        "peak_rss_mib": _mib(_status_kb("VmHWM")),
    }


# ---------------------------------------------------------------------------------------------
# Part 2: memory of every component at the official size (child process)
# ---------------------------------------------------------------------------------------------


def official_w2v_bert_config(num_hidden_layers: int = 24):
    """facebook/w2v-bert-2.0's config.json values (the transformers defaults), dropouts off."""
    from transformers import Wav2Vec2BertConfig

    return Wav2Vec2BertConfig(
        hidden_size=1024, num_hidden_layers=num_hidden_layers, num_attention_heads=16, intermediate_size=4096,
        output_hidden_size=1024, feature_projection_input_dim=160, conv_depthwise_kernel_size=31,
        position_embeddings_type="relative_key", left_max_position_embeddings=64, right_max_position_embeddings=8,
        add_adapter=False, apply_spec_augment=False, mask_time_prob=0.0, layerdrop=0.0, hidden_dropout=0.0,
        attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, conformer_conv_dropout=0.0,
    )


def child_memory() -> dict:
    import torch

    from models.maskgct.checkpoints import build_acoustic_codec, build_semantic_codec
    from models.maskgct.configs import official_acoustic_codec_config, official_semantic_codec_config
    from models.maskgct.generation_configs import OFFICIAL_T2S, official_s2a_config
    from models.maskgct.s2a import build_s2a_model
    from models.maskgct.semantic_encoder import OFFICIAL_LAYER, build_semantic_encoder
    from models.maskgct.t2s import build_t2s_model

    torch.set_num_threads(THREADS)
    baseline_kb = _status_kb("VmRSS")
    components: dict[str, dict] = {}
    kept = {}

    def record(name: str, module, t0: float, **extra) -> None:
        kept[name] = module
        components[name] = {"params": _params(module), "fp32_mib": round(_params(module) * 4 / 2**20, 1),
                            "build_s": round(time.perf_counter() - t0, 2),
                            "rss_after_mib": _mib(_status_kb("VmRSS")), "peak_rss_so_far_mib": _mib(_status_kb("VmHWM")),
                            **extra}

    # w2v-bert-2.0 as the pipeline loads it: only the first 17 conformer layers are built.
    from transformers import Wav2Vec2BertModel

    with torch.device("meta"):
        full_w2v_params = _params(Wav2Vec2BertModel(official_w2v_bert_config(24)))
    t0 = time.perf_counter()
    enc = build_semantic_encoder(official_w2v_bert_config(OFFICIAL_LAYER), layer=OFFICIAL_LAYER, seed=0)
    record("semantic_encoder", enc, t0, layers_built=OFFICIAL_LAYER, full_24_layer_params=full_w2v_params)

    t0 = time.perf_counter()
    record("semantic_codec", build_semantic_codec(official_semantic_codec_config(), seed=1), t0)

    t0 = time.perf_counter()
    aco = build_acoustic_codec(official_acoustic_codec_config(), seed=2)
    record("acoustic_codec", aco, t0, encoder_params=_params(aco.encoder), decoder_params=_params(aco.decoder))

    t0 = time.perf_counter()
    record("t2s", build_t2s_model(OFFICIAL_T2S, seed=3), t0)
    t0 = time.perf_counter()
    record("s2a_1layer", build_s2a_model(official_s2a_config("1layer"), seed=4), t0)
    t0 = time.perf_counter()
    record("s2a_full", build_s2a_model(official_s2a_config("full"), seed=5), t0)

    total = sum(c["params"] for c in components.values())
    peak_kb = _status_kb("VmHWM")
    return {
        "how": "random float32 weights on CPU, built in pipeline order with the modules' own builders",
        "components": components,
        "total_params": total,
        "total_fp32_mib": round(total * 4 / 2**20, 1),
        "baseline_rss_after_imports_mib": _mib(baseline_kb),
        "final_rss_mib": _mib(_status_kb("VmRSS")),
        "peak_rss_mib": _mib(peak_kb),
        "peak_rss_ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_over_weights_mib": round(_mib(peak_kb) - _mib(baseline_kb) - total * 4 / 2**20, 1),
    }


def run_child(part: str, *args: str, timeout: float = 420) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", part, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"child {part} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["child_wall_s"] = round(time.perf_counter() - t0, 1)
    if part == "memory":
        # The same figure seen from outside: the child's peak RSS as the kernel reports it.
        result["peak_rss_children_ru_maxrss_mib"] = round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    return result


# ---------------------------------------------------------------------------------------------
# Part 3: the route with tiny weights, and the pipeline in-process
# ---------------------------------------------------------------------------------------------


def in_process(wav: bytes, requests: int, warmup: int) -> dict:
    import numpy as np
    import soundfile as sf
    import torch

    from models.maskgct.pipeline import MaskGCTPipeline

    torch.set_num_threads(THREADS)
    pipeline = MaskGCTPipeline.from_weights("tiny", g2p_data=str(G2P_DATA))
    reference, sr = sf.read(io.BytesIO(wav), dtype="float32")
    assert sr == pipeline.sample_rate

    def call():
        return pipeline.generate(TEXT, "en", reference, REFERENCE_TEXT, target_len_s=TARGET_LEN_S, seed=SEED,
                                 **ROUTE_DEFAULTS)

    for _ in range(warmup):
        call()
    lat, out = [], None
    with CpuWindow() as window:
        for _ in range(requests):
            t0 = time.perf_counter()
            out = call()
            lat.append(time.perf_counter() - t0)
    audio_s = len(out) / pipeline.sample_rate
    return {**percentiles(lat), "min_ms": round(min(lat) * 1000, 2), "audio_s": audio_s,
            "rtf_p50": round(percentiles(lat)["p50_ms"] / 1000 / audio_s, 4), "cpu": window.figures,
            "weights": pipeline.weights_kind, "torch_threads": torch.get_num_threads(),
            "finite": bool(np.isfinite(out).all())}


def wait_maskgct_ready(base: str, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(base + "/api/health", timeout=5).json()["models"]["maskgct"]
            if last["status"] == "ready":
                return
            if last["status"] == "unavailable":
                raise RuntimeError(f"maskgct unavailable: {last}")
        except RuntimeError:
            raise
        except Exception:
            pass
        time.sleep(1)
    raise RuntimeError(f"maskgct did not become ready: {last}")


def serve_route(wav: bytes, requests: int, warmup: int, max_wait_s: float) -> dict:
    import httpx
    import soundfile as sf

    from bench_common import BENCH_KEY, start_serve, stop_serve

    t0 = time.perf_counter()
    try:
        base = start_serve({"weights": "tiny", "dev_mode": False, "torch_threads": THREADS, **NO_LIMITS})
        wait_maskgct_ready(base)
        startup_s = time.perf_counter() - t0
        quiet = wait_quiet(max_wait_s, threshold_cores=0.5)   # idle replicas poll a little
        data = {"text": TEXT, "reference_text": REFERENCE_TEXT, "language": "en", "target_len": str(TARGET_LEN_S),
                "seed": str(SEED)}   # n_timesteps, cfg, temperature: the route's defaults
        url = base + "/api/tts/maskgct"
        window = CpuWindow()

        async def run():
            lat, model_ms, audio_s, bodies = [], [], None, set()
            async with httpx.AsyncClient(timeout=300) as client:
                async def call():
                    r = await client.post(url, headers={"X-API-Key": BENCH_KEY}, data=data,
                                          files={"reference_audio": ("ref.wav", wav, "audio/wav")})
                    if r.status_code != 200:
                        raise RuntimeError(f"{url}: HTTP {r.status_code}: {r.text[:300]}")
                    return r

                for _ in range(warmup):
                    await call()
                window.__enter__()
                for _ in range(requests):
                    t = time.perf_counter()
                    r = await call()
                    lat.append(time.perf_counter() - t)
                    timing = dict(part.split(";dur=") for part in r.headers.get("server-timing", "").split(", ")
                                  if ";dur=" in part)
                    if "model" in timing:
                        model_ms.append(float(timing["model"]))
                    out, sr = sf.read(io.BytesIO(r.content), dtype="float32")
                    audio_s = len(out) / sr
                    bodies.add(r.content)
                    weights = r.headers.get("x-amphion-weights")
                window.__exit__(None, None, None)
            return lat, model_ms, audio_s, len(bodies), weights

        lat, model_ms, audio_s, distinct, weights = asyncio.run(run())
        return {**percentiles(lat), "min_ms": round(min(lat) * 1000, 2), "audio_s": audio_s,
                "rtf_p50": round(percentiles(lat)["p50_ms"] / 1000 / audio_s, 4),
                # own_process_cores is the HTTP client only; the replicas are Ray processes.
                "cpu": {"machine_busy_cores": window.figures["machine_busy_cores"],
                        "client_process_cores": window.figures["own_process_cores"]},
                "rtf_p99": round(percentiles(lat)["p99_ms"] / 1000 / audio_s, 4),
                "server_timing_model_p50_ms": percentiles([m / 1000 for m in model_ms])["p50_ms"] if model_ms else None,
                "weights": weights, "identical_outputs_same_seed": distinct == 1,
                "startup_s": round(startup_s, 1), "torch_threads": THREADS, "before": quiet}
    finally:
        try:
            stop_serve()
        except Exception:
            pass


def route(requests: int, warmup: int, max_wait_s: float) -> dict:
    wav = speech_like_wav(REFERENCE_SECONDS)
    out = {"what": f"POST /api/tts/maskgct, tiny weights, {REFERENCE_SECONDS:g} s reference, "
                   f"{len(TEXT.split())}-word text, target_len {TARGET_LEN_S:g} s, n_timesteps 25, cfg 2.5, "
                   f"temperature 0.7 (route defaults), seed {SEED}, concurrency 1, "
                   f"{requests} requests after {warmup} warm-ups",
           "text": TEXT, "reference_text": REFERENCE_TEXT}
    try:
        quiet = wait_quiet(max_wait_s)
        out["in_process"] = in_process(wav, requests, warmup)
        out["in_process"]["before"] = quiet
    except Exception as exc:
        out["in_process"] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
    for attempt in (1, 2):
        try:
            out["serve"] = serve_route(wav, requests, warmup, max_wait_s)
            out["serve"]["attempt"] = attempt
            break
        except Exception as exc:
            out.setdefault("serve_errors", []).append(f"attempt {attempt}: {type(exc).__name__}: {exc}"[:1000])
            if attempt == 1:
                time.sleep(60)
    if "serve" in out and "p50_ms" in out.get("in_process", {}):
        out["serve_added_p50_ms"] = round(out["serve"]["p50_ms"] - out["in_process"]["p50_ms"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--step-repeats", type=int, default=4, help="timed T2S step calls (after one warm-up)")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--skip-route", action="store_true")
    parser.add_argument("--wait-quiet", type=float, default=60,
                        help="before each part, wait up to this many seconds for other processes to go quiet")
    parser.add_argument("--child", choices=("t2s_step", "memory"), help=argparse.SUPPRESS)
    opts = parser.parse_args()

    if opts.child == "t2s_step":
        print(json.dumps(child_t2s_step(opts.step_repeats)))
        return
    if opts.child == "memory":
        print(json.dumps(child_memory()))
        return

    import torch

    started = time.perf_counter()
    result = {"machine": {"cpu": _cpu_name(), "cores": os.cpu_count(),
                          "torch": torch.__version__, "python": platform.python_version()}}
    try:
        quiet = wait_quiet(opts.wait_quiet)
        result["t2s_step_official"] = run_child("t2s_step", "--step-repeats", str(opts.step_repeats))
        result["t2s_step_official"]["before"] = quiet
    except Exception as exc:
        result["t2s_step_official"] = {"error": str(exc)[:2000]}
    try:
        result["memory_official"] = run_child("memory")
    except Exception as exc:
        result["memory_official"] = {"error": str(exc)[:2000]}
    if not opts.skip_route:
        result["route_tiny"] = route(opts.requests, opts.warmup, opts.wait_quiet)
    result["total_wall_s"] = round(time.perf_counter() - started, 1)
    save("maskgct", result)


if __name__ == "__main__":
    main()

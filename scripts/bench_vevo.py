"""Vevo / Vevo1.5 (VevoSing) cost, measured in one run (each part selectable with --parts):

  ar     the AR content-style transformers at the official size with seeded random weights (real
         tensors): Vq32ToVq8192 (Vevo voice/style conversion) and ar_emilia101k_singnet7k (Vevo1.5),
         PhoneToVq8192 (Vevo TTS) on request (--ar-models). A realistic prompt (--ar-prompt-tokens,
         400: for Vevo 150 prompt ids = a 3 s style reference at 50 Hz, the rest vq32 inputs; for
         Vevo1.5 38 prompt ids = 3 s at 12.5 Hz, 50 style ids = 8 s at 6.25 Hz, the rest phones) is
         prefilled into the KV cache, then --ar-new-tokens are decoded one at a time through
         ``ContentStyleAR.continue_ids`` with the reference's sampling (temperature 0.8, top-k 50,
         top-p 0.9, EOS held off); prefill seconds (with the first token's sampling), seconds per
         decoded token and tokens per second; peak RSS.
  fm     the flow-matching transformers at the official size with seeded random weights:
         Vq8192ToMels (Vevo) and fm_emilia101k_singnet7k (VevoSing): a --fm-prompt-seconds (3 s)
         timbre prompt + a --fm-target-seconds (5 s on CPU, 10 s on CUDA) target through the
         models' own ``generate`` (Euler sampler) with the routes' guidance (cfg 1.0, rescale 0.75:
         a conditional pass over prompt + target and an unconditional pass over the target, every
         step); seconds per step (after --fm-warmup-steps untimed), steps per second; peak RSS.
  route  the served routes end to end with tiny weights (the whole application on a local Ray, as
         bench_maskgct.py): /api/vc/vevo-timbre, /api/vc/vevo-voice (mode ar), /api/tts/vevo (mode
         fm), /api/svc/vevosing (mode fm, use_shifted_src): p50/p90 latency and real-time factor for
         ~3 s of audio at concurrency 1, against the same tasks in process
         (``VevoPipeline.from_weights("tiny")``, ``VevoSingPipeline.from_weights("tiny")``) for the
         serving overhead. Always on the CPU in float32 (tiny weights measure the serving, not the
         models; the composed application's replicas do not reserve GPUs).

From the ar and fm figures the run estimates the real-time factor (compute seconds / audio seconds)
of 10 s of speech per route: AR prefill + the tokens 10 s needs (500 at Vevo's 50 Hz, 125 at
Vevo1.5's 12.5 Hz) + 32 FM steps (scaled linearly in tokens when the measured target is not 10 s).
The tokenizers (HuBERT / Whisper), mel front end and Vocos vocoder are not in that estimate.

The official-size parts each run in a child process (own memory, own peak RSS); a model whose
float32 build would not fit the memory available is skipped with a note. The machine may be
shared: each part first waits (up to --wait-quiet s) for the CPUs to go idle, every timing
reports how many cores other processes kept busy meanwhile (`other_busy_cores`), and an
official-size child whose timings were contended runs once more (a busy neighbour on one of two
cores makes torch's kernels several times slower).

    .venv/bin/python scripts/bench_vevo.py                          # CPU, every part (4-8 min on 2 cores)
    .venv/bin/python scripts/bench_vevo.py --parts ar,fm --device cuda --dtype float16

Results go to bench_results/vevo_<device>_<dtype>.json; a readable summary is printed, then the same
figures as one JSON line. G2P data for the TTS route: $AMPHION_G2P_DATA, else
../shared/data/maskgct_g2p next to the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench_common import BENCH_KEY, NO_LIMITS, RESULTS, ROOT, SHARED_DATA, percentiles, speech_like_wav
from bench_maskgct import CpuWindow, _cpu_name, wait_quiet

PARTS = ("ar", "fm", "route")
AR_MODELS = ("Vq32ToVq8192", "ar_emilia101k_singnet7k")
FM_MODELS = ("Vq8192ToMels", "fm_emilia101k_singnet7k")
DTYPES = ("float32", "float16", "bfloat16")
G2P_DATA = Path(os.environ.get("AMPHION_G2P_DATA") or SHARED_DATA["AMPHION_G2P_DATA"])

# Token rates (per second of audio).
MEL_HZ = 50.0            # Vevo's vq8192 ids, the mel of both FMs (24 kHz, hop 480)
VEVOSING_CS_HZ = 12.5    # Vevo1.5 Coco content-style ids (the FM upsamples them 4x)
VEVOSING_STYLE_HZ = 6.25  # Vevo1.5 Coco prosody ids
RTF_AUDIO_S = 10.0       # the speech length of the real-time factor estimates
STYLE_REFERENCE_S = 3.0  # the style reference in the AR prompt
STYLE_AND_SOURCE_S = 8.0  # reference + source, whose prosody ids the Vevo1.5 AR reads

# The route part's inputs (the in-process calls get the same ones).
SOURCE_SECONDS = 3.0
REFERENCE_SECONDS = 3.0
TTS_TEXT = "The quick brown fox jumps over the lazy dog."  # ~3 s with the tiny AR (4 frames per phone)
SEED = 1234
HEALTH_KEYS = ("vevo_timbre", "vevo_voice", "vevo_tts", "vevosing")
CONTENDED_CORES = 0.3    # other processes' busy cores above which an official-size timing is retried


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def mem_available_mib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def latency_figures(samples_s: list[float]) -> dict:
    """`percentiles` (p50, p99, mean) plus p90 and min, in ms."""
    ms = sorted(x * 1000 for x in samples_s)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    return {**percentiles(samples_s), "p90_ms": round(p90, 2), "min_ms": round(ms[0], 2)}


def median_s(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


class Device:
    """Where the official-size models run: torch device, dtype and a clock that waits for the GPU."""

    def __init__(self, name: str, dtype_name: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.device = torch.device(name)
        self.dtype = getattr(torch, dtype_name)

    def now(self) -> float:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()
        return time.perf_counter()

    def memory(self) -> dict:
        figures = {"peak_rss_mib": peak_rss_mib()}
        if self.device.type == "cuda":
            figures["cuda_max_allocated_mib"] = round(self.torch.cuda.max_memory_allocated() / 2**20, 1)
        return figures


def params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# Part 1: the AR at the official size (child process)
# ---------------------------------------------------------------------------------------------


def ar_prompt(model, total: int, generator) -> tuple:
    """A (1, total) inference sequence laid out as a real request (see the module docstring) and
    how its tokens split."""
    import torch

    from models.vevo.fm_ar_configs import VevoARConfig

    config = model.config
    vocab = model.vocab

    def ids(n: int, size: int, offset: int = 0):
        return torch.randint(0, size, (1, n), generator=generator) + offset

    if isinstance(config, VevoARConfig):
        n_prompt = round(STYLE_REFERENCE_S * MEL_HZ)
        n_inputs = total - n_prompt - 3                       # in_BOS, in_EOS, out_BOS
        inputs = ids(n_inputs, config.vc_input_vocab_size, config.vc_input_ids_offset)  # vq32, shifted
        seq = model.prompt_ids(inputs, ids(n_prompt, vocab.output.size))
        split = {"vq32_inputs": n_inputs, "prompt_output_ids": n_prompt, "special": 3}
    else:
        n_prompt = round(STYLE_REFERENCE_S * VEVOSING_CS_HZ)
        n_style = round(STYLE_AND_SOURCE_S * VEVOSING_STYLE_HZ)
        n_phones = total - n_prompt - n_style - 5             # content/style BOS+EOS, out_BOS
        seq = model.prompt_ids(ids(n_phones, vocab.input.size), ids(n_prompt, vocab.output.size),
                               style_ids=ids(n_style, vocab.style.size))
        split = {"phones": n_phones, "style_ids": n_style, "prompt_output_ids": n_prompt, "special": 5}
    if seq.shape[1] != total or min(split.values()) < 0:
        raise ValueError(f"--ar-prompt-tokens {total} is too short for this prompt layout: {split}")
    return seq, split


def child_ar(opts: argparse.Namespace) -> dict:
    import torch

    from models.vevo.ar_transformer import SamplingConfig, build_ar_model
    from models.vevo.fm_ar_configs import VevoARConfig, VevoSingARConfig, official_checkpoint
    from models.vevo.orchestration import AR_TEMPERATURE, AR_TOP_K, AR_TOP_P

    dev = Device(opts.device, opts.dtype, opts.threads)
    config = official_checkpoint(opts.model, (VevoARConfig, VevoSingARConfig)).config
    t0 = time.perf_counter()
    model = build_ar_model(config, seed=0, device=dev.device, dtype=dev.dtype)
    build_s = dev.now() - t0
    rss_after_build = peak_rss_mib()
    generator = torch.Generator().manual_seed(0)
    seq, split = ar_prompt(model, opts.ar_prompt_tokens, generator)
    seq = seq.to(dev.device)
    vevosing = isinstance(config, VevoSingARConfig)
    n_new = opts.ar_new_tokens

    def sampling(n: int) -> SamplingConfig:
        # The reference's sampling; EOS held off so every run decodes n tokens; Vevo1.5's pipeline
        # samples output ids only (output_only), Vevo's the whole vocabulary.
        return SamplingConfig(temperature=AR_TEMPERATURE, top_k=AR_TOP_K, top_p=AR_TOP_P, min_new_tokens=n,
                              max_new_tokens=n, output_only=vevosing)

    # Warm-up: a short prompt and two tokens (kernel selection, allocator, thread pool).
    model.continue_ids(seq[:, :32], sampling(2), seed=0)
    runs = []
    for run in range(opts.ar_repeats):
        stamps: list[float] = []
        with CpuWindow() as window:
            t0 = dev.now()
            new = model.continue_ids(seq, sampling(n_new), seed=run, progress_every=1,
                                     on_progress=lambda done, limit: stamps.append(dev.now()))
        assert new.shape == (1, n_new) and len(stamps) == n_new
        decode = [b - a for a, b in zip(stamps, stamps[1:])]
        runs.append({"prefill_s": round(stamps[0] - t0, 4), "decode_s_per_token_median": median_s(decode),
                     "decode_s_per_token_min": round(min(decode), 4),
                     "decode_total_s": round(stamps[-1] - stamps[0], 3), "cpu": window.figures})
    best = min(runs, key=lambda r: r["prefill_s"] + n_new * r["decode_s_per_token_median"])
    rate = VEVOSING_CS_HZ if vevosing else MEL_HZ
    tokens_10s = round(RTF_AUDIO_S * rate)
    return {
        "model": opts.model,
        "llama": {"hidden": config.llama.hidden_size, "intermediate": config.llama.intermediate_size,
                  "layers": config.llama.num_layers, "heads": config.llama.num_heads, "vocab": config.vocab_size},
        "params": params(model),
        "device": str(dev.device), "dtype": opts.dtype, "torch_threads": torch.get_num_threads(),
        "build_s": round(build_s, 2),
        "prompt_tokens": seq.shape[1], "prompt_split": split, "new_tokens": n_new,
        "output_token_hz": rate,
        "runs": runs,
        "prefill_s": best["prefill_s"],
        "decode_s_per_token": best["decode_s_per_token_median"],
        "decode_tokens_per_s": round(1 / best["decode_s_per_token_median"], 2),
        "tokens_for_10s": tokens_10s,
        "ar_s_for_10s_estimate": round(best["prefill_s"] + tokens_10s * best["decode_s_per_token_median"], 2),
        "rss_after_build_mib": rss_after_build,
        **dev.memory(),
    }


# ---------------------------------------------------------------------------------------------
# Part 2: the flow-matching transformer at the official size (child process)
# ---------------------------------------------------------------------------------------------


def child_fm(opts: argparse.Namespace) -> dict:
    import torch

    from models.vevo.flow_matching import DEFAULT_CFG, DEFAULT_RESCALE_CFG, DEFAULT_STEPS, build_fm_model
    from models.vevo.fm_ar_configs import FMConfig, official_checkpoint
    from models.vevosing.flow_matching import build_vevosing_fm_model

    dev = Device(opts.device, opts.dtype, opts.threads)
    config = official_checkpoint(opts.model, FMConfig).config
    build = build_fm_model if config.family == "vevo" else build_vevosing_fm_model
    t0 = time.perf_counter()
    model = build(config, seed=0, device=dev.device, dtype=dev.dtype)
    build_s = dev.now() - t0
    rss_after_build = peak_rss_mib()
    n_prompt = round(opts.fm_prompt_seconds * MEL_HZ)
    n_target = round(opts.fm_target_seconds * MEL_HZ)
    generator = torch.Generator().manual_seed(0)
    prompt_mel = torch.randn(1, n_prompt, config.mel_dim, generator=generator).to(dev.device, dev.dtype)
    if config.family == "vevo":
        # 50 Hz ids for prompt + target; the target is what is left after the prompt.
        codes = torch.randint(0, config.cond_codebook_size, (1, n_prompt + n_target), generator=generator)
        extra = {}
    else:
        # 12.5 Hz ids, upsampled 4x and fitted to prompt + target (the "fm" route's inference_fm).
        n_codes = math.ceil((n_prompt + n_target) / config.cond_scale_factor)
        codes = torch.randint(0, config.cond_codebook_size, (1, n_codes), generator=generator)
        extra = {"target_frames": n_target}
    steps = opts.fm_warmup_steps + opts.fm_steps
    stamps: list[float] = []
    with CpuWindow() as window:
        t0 = dev.now()
        mel = model.generate(codes.to(dev.device), prompt_mel, n_timesteps=steps, cfg=DEFAULT_CFG,
                             rescale_cfg=DEFAULT_RESCALE_CFG, seed=0, on_step=lambda i, n: stamps.append(dev.now()))
    assert mel.shape == (1, n_target, config.mel_dim) and bool(torch.isfinite(mel).all())
    durations = [b - a for a, b in zip([t0, *stamps], stamps)][opts.fm_warmup_steps:]
    step_s = statistics.median(durations)
    # Tokens the estimator sees per step: conditional (prompt + target) and unconditional (target).
    tokens = (n_prompt + n_target) + n_target
    n_target_10s = round(RTF_AUDIO_S * MEL_HZ)
    scale = ((n_prompt + n_target_10s) + n_target_10s) / tokens
    return {
        "model": opts.model,
        "config": {"hidden": config.hidden_size, "layers": config.num_layers, "heads": config.num_heads,
                   "mel_dim": config.mel_dim, "cond_codebook_size": config.cond_codebook_size,
                   "cond_scale_factor": config.cond_scale_factor},
        "params": params(model),
        "device": str(dev.device), "dtype": opts.dtype, "torch_threads": torch.get_num_threads(),
        "build_s": round(build_s, 2),
        "shape": {"prompt_frames": n_prompt, "target_frames": n_target, "cond_pass_tokens": n_prompt + n_target,
                  "uncond_pass_tokens": n_target, "codes": codes.shape[1]},
        "guidance": {"cfg": DEFAULT_CFG, "rescale_cfg": DEFAULT_RESCALE_CFG},
        "warmup_steps": opts.fm_warmup_steps,
        "step_s_samples": [round(d, 4) for d in durations],
        "step_s": round(step_s, 4),
        "step_s_min": round(min(durations), 4),
        "steps_per_s": round(1 / step_s, 3),
        "cpu": window.figures,
        "fm_32_steps_for_10s_s_estimate": round(DEFAULT_STEPS * step_s * scale, 2),  # the routes' default
        "scaled_to_10s_by": round(scale, 3),
        "rss_after_build_mib": rss_after_build,
        **dev.memory(),
    }


# ---------------------------------------------------------------------------------------------
# Parent: children, memory check, the 10 s estimates
# ---------------------------------------------------------------------------------------------


def run_child(part: str, model: str, argv: list[str], timeout: float) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, *argv, "--child", part, "--model", model],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"child {part} {model} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["child_wall_s"] = round(time.perf_counter() - t0, 1)
    return result


def official_params(model: str) -> int:
    """Parameter count of an official AR or FM configuration (built on the meta device)."""
    import torch

    from models.vevo.ar_transformer import ContentStyleAR
    from models.vevo.flow_matching import VevoFlowMatching
    from models.vevo.fm_ar_configs import FMConfig, official_checkpoint
    from models.vevosing.flow_matching import VevoSingFlowMatching

    config = official_checkpoint(model).config
    if isinstance(config, FMConfig):
        cls = VevoFlowMatching if config.family == "vevo" else VevoSingFlowMatching
    else:
        cls = ContentStyleAR
    with torch.device("meta"):
        return params(cls(config))


def memory_note(model: str, dtype: str) -> str | None:
    """Why `model` cannot be built here, or None: the random build is float32 on the host first
    (then cast), plus ~1.5 GiB for torch and activations."""
    weights_mib = official_params(model) * 4 / 2**20
    need = weights_mib * (1.5 if dtype != "float32" else 1.0) + 1536
    available = mem_available_mib()
    if need > available:
        return (f"skipped: building {model} needs about {need / 1024:.1f} GiB of host memory, "
                f"{available / 1024:.1f} GiB available")
    return None


def other_busy_cores(result: dict) -> float:
    """The most cores other processes kept busy during a child's timings."""
    windows = [r["cpu"] for r in result.get("runs", [])] + ([result["cpu"]] if "cpu" in result else [])
    return max((w["other_busy_cores"] for w in windows), default=0.0)


def official_part(part: str, models: list[str], argv: list[str], opts: argparse.Namespace) -> dict:
    """One child per model. On this shared machine a neighbour on one core slows torch's two-thread
    kernels several times over, so a child whose timings were contended (> CONTENDED_CORES) runs once
    more after another quiet wait; the less contended result is kept, the other noted."""
    out = {}
    for model in models:
        note = memory_note(model, opts.dtype)
        if note:
            out[model] = {"skipped": note}
            continue
        try:
            tries = []
            for _ in range(2):
                quiet = wait_quiet(opts.wait_quiet)
                tries.append({**run_child(part, model, argv, timeout=600), "before": quiet})
                if opts.device == "cuda" or other_busy_cores(tries[-1]) <= CONTENDED_CORES:
                    break
            best = min(tries, key=other_busy_cores)
            if len(tries) > 1:
                best["contended_try_discarded"] = {"other_busy_cores": max(map(other_busy_cores, tries))}
            out[model] = best
        except Exception as exc:
            out[model] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    return out


def rtf_estimates(ar: dict, fm: dict) -> dict:
    """Compute seconds / audio seconds of 10 s of speech per route, from the AR and FM figures."""
    routes = {  # route: (AR model or None, FM model)
        "/api/vc/vevo-timbre": (None, "Vq8192ToMels"),
        "/api/vc/vevo-voice (ar)": ("Vq32ToVq8192", "Vq8192ToMels"),
        "/api/vc/vevo-style": ("Vq32ToVq8192", "Vq8192ToMels"),
        "/api/tts/vevo": ("PhoneToVq8192", "Vq8192ToMels"),
        "/api/svc/vevosing (fm)": (None, "fm_emilia101k_singnet7k"),
        "/api/svc/vevosing (ar)": ("ar_emilia101k_singnet7k", "fm_emilia101k_singnet7k"),
    }
    out = {}
    for route, (ar_model, fm_model) in routes.items():
        fm_s = fm.get(fm_model, {}).get("fm_32_steps_for_10s_s_estimate")
        ar_s = 0.0 if ar_model is None else ar.get(ar_model, {}).get("ar_s_for_10s_estimate")
        if fm_s is None or ar_s is None:
            continue
        out[route] = {"ar_s": ar_s, "fm_s": fm_s, "rtf": round((ar_s + fm_s) / RTF_AUDIO_S, 3)}
    missing = sorted({m for pair in routes.values() for m in pair if m and m not in ar and m not in fm})
    if missing:
        out["not_measured"] = f"routes that need {', '.join(missing)} are left out (--ar-models / --fm-models)"
    return out


# ---------------------------------------------------------------------------------------------
# Part 3: the routes with tiny weights, and the same tasks in process
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteCase:
    """One route: its path, upload fields (form field -> "source" / "reference"), form fields, and
    the same task in process (pipelines, source, reference -> float32 24 kHz audio)."""

    key: str
    path: str
    uploads: dict
    form: dict
    in_process: Callable


def route_cases() -> list[RouteCase]:
    # Route defaults are spelled out (mode, language, use_shifted_src) so both sides run the same task.
    return [
        RouteCase("vevo_timbre", "/api/vc/vevo-timbre", {"source_audio": "source", "reference_audio": "reference"},
                  {"seed": str(SEED)},
                  lambda p, src, ref: p["vevo"].timbre(src, ref, seed=SEED)),
        RouteCase("vevo_voice", "/api/vc/vevo-voice", {"source_audio": "source", "reference_audio": "reference"},
                  {"mode": "ar", "seed": str(SEED)},
                  lambda p, src, ref: p["vevo"].voice(src, ref, "ar", seed=SEED)),
        RouteCase("vevo_tts", "/api/tts/vevo", {"reference_audio": "reference"},
                  {"text": TTS_TEXT, "mode": "fm", "language": "auto", "seed": str(SEED)},
                  lambda p, src, ref: p["vevo"].tts(TTS_TEXT, ref, "fm", language="auto", seed=SEED)),
        RouteCase("vevosing", "/api/svc/vevosing", {"content_audio": "source", "reference_audio": "reference"},
                  {"mode": "fm", "use_shifted_src": "true", "seed": str(SEED)},
                  lambda p, src, ref: p["vevosing"].convert(src, ref, "fm", use_shifted_src=True, seed=SEED)),
    ]


def route_inputs() -> dict[str, bytes]:
    return {"source": speech_like_wav(SOURCE_SECONDS), "reference": speech_like_wav(REFERENCE_SECONDS)}


def in_process(cases: list[RouteCase], wavs: dict[str, bytes], opts: argparse.Namespace) -> tuple[dict, dict]:
    """Figures per route, and the last output of each (to compare with the served one)."""
    import numpy as np
    import soundfile as sf
    import torch

    from models.vevo.pipeline import VevoPipeline
    from models.vevosing.pipeline import VevoSingPipeline

    torch.set_num_threads(opts.threads)
    t0 = time.perf_counter()
    pipelines = {"vevo": VevoPipeline.from_weights("tiny", g2p_data=str(G2P_DATA)),
                 "vevosing": VevoSingPipeline.from_weights("tiny", g2p_data=str(G2P_DATA))}
    load_s = time.perf_counter() - t0
    src, _ = sf.read(io.BytesIO(wavs["source"]), dtype="float32")
    ref, _ = sf.read(io.BytesIO(wavs["reference"]), dtype="float32")
    out, outputs = {"load_s": round(load_s, 2)}, {}
    for case in cases:
        for _ in range(opts.warmup):
            case.in_process(pipelines, src, ref)
        lat, audio = [], None
        with CpuWindow() as window:
            for _ in range(opts.requests):
                t = time.perf_counter()
                audio = case.in_process(pipelines, src, ref)
                lat.append(time.perf_counter() - t)
        audio_s = len(audio) / 24000
        outputs[case.key] = audio
        figures = latency_figures(lat)
        out[case.key] = {**figures, "audio_s": audio_s, "rtf_p50": round(figures["p50_ms"] / 1000 / audio_s, 4),
                         "rtf_p90": round(figures["p90_ms"] / 1000 / audio_s, 4), "cpu": window.figures,
                         "finite": bool(np.isfinite(audio).all())}
    out["weights"] = {name: p.weights_kind for name, p in pipelines.items()}
    out["torch_threads"] = torch.get_num_threads()
    return out, outputs


def wait_models_ready(base: str, keys: tuple[str, ...], timeout: float = 240) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        try:
            models = httpx.get(base + "/api/health", timeout=5).json()["models"]
            last = {k: models[k]["status"] for k in keys}
            broken = {k: models[k] for k in keys if models[k]["status"] == "unavailable"}
            if broken:
                raise RuntimeError(f"unavailable: {broken}")
            if all(s == "ready" for s in last.values()):
                return
        except RuntimeError:
            raise
        except Exception:
            pass
        time.sleep(1)
    raise RuntimeError(f"the Vevo models did not become ready: {last}")


def server_timing(header: str) -> dict[str, float]:
    return {name: float(dur) for name, dur in (p.split(";dur=") for p in header.split(", ") if ";dur=" in p)}


def start_app(args: dict) -> str:
    """The whole application on a local Ray (``bench_common.start_serve``), with the G2P data the
    TTS route reads."""
    from bench_common import start_serve

    return start_serve(args)


def serve_routes(cases: list[RouteCase], wavs: dict[str, bytes], local_outputs: dict,
                 opts: argparse.Namespace) -> dict:
    """Figures per route; `max_abs_diff_vs_in_process` checks that the route did the same work as
    the in-process call (same seed: the same audio up to the WAV's 16-bit rounding)."""
    import httpx
    import numpy as np
    import soundfile as sf

    from bench_common import stop_serve

    t0 = time.perf_counter()
    try:
        base = start_app({"weights": "tiny", "dev_mode": False, "device": "cpu", "dtype": "float32",
                          "torch_threads": opts.threads, **NO_LIMITS})
        wait_models_ready(base, HEALTH_KEYS)
        out: dict = {"startup_s": round(time.perf_counter() - t0, 1)}
        out["before"] = wait_quiet(opts.wait_quiet, threshold_cores=0.5)   # idle replicas poll a little

        async def one_route(client, case: RouteCase) -> dict:
            files = {field: (f"{which}.wav", wavs[which], "audio/wav") for field, which in case.uploads.items()}

            async def call():
                r = await client.post(base + case.path, headers={"X-API-Key": BENCH_KEY}, data=case.form,
                                      files=files)
                if r.status_code != 200:
                    raise RuntimeError(f"{case.path}: HTTP {r.status_code}: {r.text[:300]}")
                return r

            for _ in range(opts.warmup):
                await call()
            lat, timings, bodies, r = [], [], set(), None
            with CpuWindow() as window:
                for _ in range(opts.requests):
                    t = time.perf_counter()
                    r = await call()
                    lat.append(time.perf_counter() - t)
                    timings.append(server_timing(r.headers.get("server-timing", "")))
                    bodies.add(r.content)
            audio, sr = sf.read(io.BytesIO(r.content), dtype="float32")
            audio_s = len(audio) / sr
            figures = latency_figures(lat)
            local = local_outputs.get(case.key)
            diff = (float(np.abs(audio - local).max()) if local is not None and local.shape == audio.shape
                    else None)

            def timing_p50(name: str):
                values = [t[name] / 1000 for t in timings if name in t]
                return percentiles(values)["p50_ms"] if values else None

            return {**figures, "audio_s": audio_s, "rtf_p50": round(figures["p50_ms"] / 1000 / audio_s, 4),
                    "rtf_p90": round(figures["p90_ms"] / 1000 / audio_s, 4),
                    "server_timing_model_p50_ms": timing_p50("model"),
                    "server_timing_compute_p50_ms": timing_p50("compute"),
                    "weights": r.headers.get("x-amphion-weights"), "identical_outputs_same_seed": len(bodies) == 1,
                    "max_abs_diff_vs_in_process": None if diff is None else round(diff, 6),
                    # own_process_cores is the HTTP client only; the replicas are Ray processes.
                    "cpu": {"machine_busy_cores": window.figures["machine_busy_cores"]}}

        async def run_all() -> None:
            async with httpx.AsyncClient(timeout=300) as client:
                for case in cases:
                    try:
                        out[case.key] = await one_route(client, case)
                    except Exception as exc:
                        out[case.key] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}

        asyncio.run(run_all())
        out["torch_threads"] = opts.threads
        return out
    finally:
        try:
            stop_serve()
        except Exception:
            pass


def route_part(opts: argparse.Namespace) -> dict:
    cases, wavs = route_cases(), route_inputs()
    out = {"what": f"tiny weights on the CPU, float32; {SOURCE_SECONDS:g} s source, {REFERENCE_SECONDS:g} s reference "
                   f"(speech-like test signal), TTS text {TTS_TEXT!r}; 32 FM steps, seed {SEED}, concurrency 1, "
                   f"{opts.requests} requests per route after {opts.warmup} warm-up(s)",
           "routes": {c.key: {"path": c.path, "form": c.form} for c in cases}}
    outputs: dict = {}
    try:
        quiet = wait_quiet(opts.wait_quiet)
        out["in_process"], outputs = in_process(cases, wavs, opts)
        out["in_process"]["before"] = quiet
    except Exception as exc:
        out["in_process"] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
    for attempt in (1, 2):
        try:
            out["serve"] = serve_routes(cases, wavs, outputs, opts)
            out["serve"]["attempt"] = attempt
            break
        except Exception as exc:
            out.setdefault("serve_errors", []).append(f"attempt {attempt}: {type(exc).__name__}: {exc}"[:1000])
            if attempt == 1:
                time.sleep(20)
    overhead = {}
    for case in cases:
        served, local = out.get("serve", {}).get(case.key, {}), out["in_process"].get(case.key, {})
        if "p50_ms" in served and "p50_ms" in local:
            overhead[case.key] = round(served["p50_ms"] - local["p50_ms"], 2)
    out["serve_added_p50_ms"] = overhead
    return out


# ---------------------------------------------------------------------------------------------
# Summary and entry point
# ---------------------------------------------------------------------------------------------


def summary(result: dict) -> str:
    s = result["settings"]
    lines = [f"Vevo benchmark on {result['machine']['gpu'] or result['machine']['cpu']} "
             f"({s['device']}, {s['dtype']}, {s['threads']} torch threads)"]
    for name, r in result.get("ar", {}).items():
        if "prefill_s" not in r:
            lines.append(f"  AR {name}: {r.get('skipped') or r.get('error', '')[:300]}")
            continue
        lines.append(f"  AR {name} ({r['params'] / 1e6:.1f} M params): prefill {r['prompt_tokens']} tokens "
                     f"{r['prefill_s']:.3f} s; decode {r['decode_s_per_token'] * 1000:.1f} ms/token = "
                     f"{r['decode_tokens_per_s']} tokens/s over {r['new_tokens']}; {r['tokens_for_10s']} tokens "
                     f"(10 s) ~ {r['ar_s_for_10s_estimate']} s; peak RSS {r['peak_rss_mib']} MiB"
                     + (f", CUDA {r['cuda_max_allocated_mib']} MiB" if "cuda_max_allocated_mib" in r else "")
                     + f"; others busy {other_busy_cores(r)} cores")
    for name, r in result.get("fm", {}).items():
        if "step_s" not in r:
            lines.append(f"  FM {name}: {r.get('skipped') or r.get('error', '')[:300]}")
            continue
        sh = r["shape"]
        lines.append(f"  FM {name} ({r['params'] / 1e6:.1f} M params): {sh['prompt_frames']} prompt + "
                     f"{sh['target_frames']} target frames, cfg {r['guidance']['cfg']}: {r['step_s']:.3f} s/step "
                     f"({r['steps_per_s']} steps/s, samples {r['step_s_samples']}); 32 steps for 10 s ~ "
                     f"{r['fm_32_steps_for_10s_s_estimate']} s; peak RSS {r['peak_rss_mib']} MiB"
                     + (f", CUDA {r['cuda_max_allocated_mib']} MiB" if "cuda_max_allocated_mib" in r else "")
                     + f"; others busy {other_busy_cores(r)} cores")
    if result.get("rtf_10s_estimate"):
        lines.append(f"  RTF estimate for {RTF_AUDIO_S:g} s of speech (AR + 32 FM steps; no tokenizer/vocoder):")
        for route, e in result["rtf_10s_estimate"].items():
            if route == "not_measured":
                lines.append(f"    ({e})")
                continue
            lines.append(f"    {route:<26} RTF {e['rtf']:<7} (AR {e['ar_s']} s + FM {e['fm_s']} s)")
    route = result.get("route")
    if route:
        lines.append(f"  Routes, {route['what']}:")
        local, served = route.get("in_process", {}), route.get("serve", {})
        for key, info in route["routes"].items():
            a, b = local.get(key, {}), served.get(key, {})

            def fig(x: dict) -> str:
                if "p50_ms" not in x:
                    return (x.get("error") or "not measured")[:200]
                return f"p50 {x['p50_ms']:.0f} / p90 {x['p90_ms']:.0f} ms, RTF {x['rtf_p50']}"

            audio = b.get("audio_s") or a.get("audio_s")
            lines.append(f"    {info['path']:<20} {audio or 0:.2f} s audio: served {fig(b)}; in process {fig(a)}; "
                         f"added {route['serve_added_p50_ms'].get(key, '-')} ms; served - in process max |diff| "
                         f"{b.get('max_abs_diff_vs_in_process', '-')}")
        if "error" in local:
            lines.append(f"    in process: {local['error'][:300]}")
        for err in route.get("serve_errors", []):
            lines.append(f"    serve: {err[:300]}")
        if "startup_s" in served:
            lines.append(f"    application startup {served['startup_s']} s")
    lines.append(f"  total {result['total_wall_s']} s; figures: {result['saved_to']}")
    return "\n".join(lines)


def comma_list(allowed: tuple[str, ...] | None = None):
    def parse(text: str) -> list[str]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if allowed is not None and x not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(allowed)}")
        return items
    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from models.vevo.fm_ar_configs import FMConfig, OFFICIAL_CHECKPOINTS

    fm_names = tuple(n for n, e in OFFICIAL_CHECKPOINTS.items() if isinstance(e.config, FMConfig))
    ar_names = tuple(n for n in OFFICIAL_CHECKPOINTS if n not in fm_names)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=comma_list(PARTS), default=list(PARTS), help="comma list of ar, fm, route")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="the ar and fm parts")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="the ar and fm parts' weights")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    parser.add_argument("--ar-models", type=comma_list(ar_names), default=list(AR_MODELS),
                        help=f"official AR checkpoints to time: {', '.join(ar_names)}")
    parser.add_argument("--ar-prompt-tokens", type=int, default=400)
    parser.add_argument("--ar-new-tokens", type=int, help="decoded tokens per run (default 30 on CPU, 500 on CUDA)")
    parser.add_argument("--ar-repeats", type=int, help="timed prefill + decode runs (default 1 on CPU, 3 on CUDA)")
    parser.add_argument("--fm-models", type=comma_list(fm_names), default=list(FM_MODELS),
                        help=f"official FM checkpoints to time: {', '.join(fm_names)}")
    parser.add_argument("--fm-prompt-seconds", type=float, default=3.0)
    parser.add_argument("--fm-target-seconds", type=float, help="default 5 on CPU, 10 on CUDA")
    parser.add_argument("--fm-steps", type=int, help="timed FM steps (default 3 on CPU, 10 on CUDA)")
    parser.add_argument("--fm-warmup-steps", type=int, default=1)
    parser.add_argument("--requests", type=int, default=5, help="timed requests per route")
    parser.add_argument("--warmup", type=int, default=1, help="untimed requests per route first")
    parser.add_argument("--wait-quiet", type=float, default=15,
                        help="before each part, wait up to this many seconds for other processes to go quiet")
    parser.add_argument("--child", choices=("ar", "fm"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    cuda = opts.device == "cuda"
    if cuda:
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device here")
    for name, cpu_default, cuda_default in (("ar_new_tokens", 30, 500), ("ar_repeats", 1, 3),
                                            ("fm_target_seconds", 5.0, 10.0), ("fm_steps", 3, 10)):
        if getattr(opts, name) is None:
            setattr(opts, name, cuda_default if cuda else cpu_default)
    if min(opts.ar_repeats, opts.fm_steps, opts.requests) < 1 or opts.ar_new_tokens < 2 or opts.fm_warmup_steps < 0:
        parser.error("step, repeat and request counts must be >= 1, --ar-new-tokens >= 2 (one decode step after "
                     "the prefill's token), warm-up steps >= 0")
    return opts


def main() -> None:
    argv = sys.argv[1:]
    opts = parse_args(argv)
    if opts.child:
        print(json.dumps({"ar": child_ar, "fm": child_fm}[opts.child](opts)))
        return

    import torch

    started = time.perf_counter()
    settings = {k: getattr(opts, k) for k in ("parts", "device", "dtype", "threads", "ar_models", "ar_prompt_tokens",
                                              "ar_new_tokens", "ar_repeats", "fm_models", "fm_prompt_seconds",
                                              "fm_target_seconds", "fm_steps", "fm_warmup_steps", "requests",
                                              "warmup")}
    result: dict = {"machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
                                "gpu": torch.cuda.get_device_name() if opts.device == "cuda" else None,
                                "memory_available_mib": round(mem_available_mib()),
                                "python": platform.python_version()},
                    "settings": settings}
    if "ar" in opts.parts:
        result["ar"] = official_part("ar", opts.ar_models, argv, opts)
    if "fm" in opts.parts:
        result["fm"] = official_part("fm", opts.fm_models, argv, opts)
    if "ar" in opts.parts or "fm" in opts.parts:
        result["rtf_10s_estimate"] = rtf_estimates(result.get("ar", {}), result.get("fm", {}))
    if "route" in opts.parts:
        result["route"] = route_part(opts)
    result["total_wall_s"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"vevo_{opts.device}_{opts.dtype}.json"
    result["saved_to"] = str(path.relative_to(ROOT))
    path.write_text(json.dumps(result, indent=2))
    print(summary(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

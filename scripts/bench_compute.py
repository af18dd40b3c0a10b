"""Model compute before and after: each measured unit at its official size (seeded random weights),
the same inputs in two source trees, side by side in one run.

Units (one generator step or one codec pass each; ``--units`` picks some):

  t2s            MaskGCT T2S: one masked-generative step (cond + uncond passes, CFG 2.5) over a
                 5 s target, 2 s prompt, 75 phones (``MaskGCTT2S.step_logits``)
  s2a            MaskGCT S2A (full model): one step of RVQ layer 1, 2 s prompt + 5 s target
  vevo_ar        Vevo AR (Vq32ToVq8192): decoding after a 200-token prompt, the reference's sampling;
                 seconds per token (the table also gives tokens/s)
  vevo_fm        Vevo flow matching (Vq8192ToMels): one Euler step with CFG, 3 s prompt + 5 s target
  dualcodec_enc  DualCodec 12hz_v1 encode of 5 s (random w2v-bert features: the codec part only)
  dualcodec_dec  DualCodec 12hz_v1 decode of those codes (8 quantizers)
  bigvgan        BigVGAN v2 (24 kHz, 100 bands, 1536 channels): vocode 2 s of mel
  audioldm_unet  AudioLDM (cvssp/audioldm-s-full-v2, diffusers UNet): one CFG batch (2 x 10 s latent)
  amphion_unet   Amphion's AudioLDM UNet: one guided step (the sampler's own ``_guided_eps``)
  picoaudio_unet PicoAudio's UNet: one CFG batch (2 x 10.24 s latent)

Models are built with the other benchmarks' builders (bench_maskgct, bench_vevo, bench_codecs,
bench_tta) or the modules' own official configurations, never retyped sizes. ``--quick`` shortens
every input (official layer sizes still) for a fast check.

How: for every unit and thread count, one worker process per tree (``--before``, default the git
worktree ../wt-base; ``--after``, default this tree) imports ``models`` from its own tree (checked),
builds the unit, warms up, then the parent asks the two workers for samples in turns (ABBA order),
so that a busy neighbour on this shared machine slows both alike. Each worker sets its process up
as its tree sets up a model replica (``deployments.runtime.configure_allocator()``, where the tree
has it) and gets ``--before-env`` / ``--after-env`` (to measure one lever: the same tree on both
sides with a switch flipped, e.g. ``AMPHION_COMPILE=0``). Figures: the median of the samples (wall seconds)
per side and the speed-up before / after; the speed-up of process CPU seconds is shown too (with
1 thread it is the least disturbed by other processes).

    .venv/bin/python scripts/bench_compute.py                      # every unit, 1 and 2 threads
    .venv/bin/python scripts/bench_compute.py --quick --units bigvgan,t2s --threads 1
    .venv/bin/python scripts/bench_compute.py --before . --before-env AMPHION_COMPILE=0 --units bigvgan

Results go to bench_results/compute.json (``--name``); the table is printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
AFTER_ROOT = SCRIPTS.parent
DEFAULT_BEFORE = AFTER_ROOT.parent / "wt-base"
REPLY = "@@bench@@"          # prefix of the worker's protocol lines (libraries may print to stdout)
SEED = 1234


# ---------------------------------------------------------------------------------------------
# Units: name -> how to build one sample function (runs in the worker, models from its tree)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    label: str
    per: str                                   # what one sample's work is counted in ("step", "token", ...)
    build: Callable[[bool], Callable[[], int]]  # quick -> sample(); sample() returns units of work done


def _gen():
    import torch

    return torch.Generator().manual_seed(SEED)


def build_t2s(quick: bool):
    import torch

    from models.maskgct.generation_configs import OFFICIAL_T2S as cfg
    from models.maskgct.t2s import build_t2s_model

    target, prompt_len, n_phones = (100, 50, 40) if quick else (250, 100, 75)
    model = build_t2s_model(cfg, seed=3)
    g = _gen()
    prompt = torch.randint(0, cfg.cond_codebook_size, (1, prompt_len), generator=g)
    phones = torch.randint(0, cfg.phone_padding_idx, (1, n_phones), generator=g)
    seq = torch.randint(0, cfg.cond_codebook_size, (1, target), generator=g)
    mask = torch.rand(1, target, generator=g) < 0.5          # a mid-decoding step: half still masked

    def sample() -> int:
        model.step_logits(prompt, phones, seq, mask, 0.5, cfg=2.5, rescale_cfg=0.75)
        return 1
    return sample


def build_s2a(quick: bool):
    import torch

    from models.maskgct.generation_configs import official_s2a_config
    from models.maskgct.s2a import build_s2a_model

    cfg = official_s2a_config("full")
    prompt_len, target = (50, 100) if quick else (100, 250)
    model = build_s2a_model(cfg, seed=5)
    g = _gen()
    cond = torch.randint(0, cfg.cond_codebook_size, (1, prompt_len + target), generator=g)
    prompt = torch.randint(0, cfg.codebook_size, (1, prompt_len, cfg.num_quantizer), generator=g)
    layer = 1                                                  # the first layer the full model decodes (10 steps)
    lower = torch.randint(0, cfg.codebook_size, (1, target, layer), generator=g)
    seq = torch.randint(0, cfg.codebook_size, (1, target), generator=g)
    mask = torch.rand(1, target, generator=g) < 0.5

    def sample() -> int:
        model.step_logits(cond, prompt, lower, seq, mask, 0.5, layer, cfg=2.5, rescale_cfg=0.75)
        return 1
    return sample


def build_vevo_ar(quick: bool):
    import torch

    from bench_vevo import ar_prompt
    from models.vevo.ar_transformer import SamplingConfig, build_ar_model
    from models.vevo.fm_ar_configs import VevoARConfig, official_checkpoint
    from models.vevo.orchestration import AR_TEMPERATURE, AR_TOP_K, AR_TOP_P

    config = official_checkpoint("Vq32ToVq8192", VevoARConfig).config
    prompt_tokens, new_tokens = (160, 6) if quick else (200, 16)
    model = build_ar_model(config, seed=0)
    seq, _ = ar_prompt(model, prompt_tokens, _gen())
    # EOS held off so every sample decodes new_tokens + 1 tokens (the first comes with the prefill).
    sampling = SamplingConfig(temperature=AR_TEMPERATURE, top_k=AR_TOP_K, top_p=AR_TOP_P,
                              min_new_tokens=new_tokens + 1, max_new_tokens=new_tokens + 1)
    state = {"runs": 0}

    def sample() -> int:
        stamps: list[float] = []
        model.continue_ids(seq, sampling, seed=state["runs"], progress_every=1,
                           on_progress=lambda done, limit: stamps.append(time.perf_counter()))
        state["runs"] += 1
        # Only the decode counts: the worker's clock is overridden by the span of the token stamps.
        sample.span = stamps[-1] - stamps[0]
        return new_tokens
    sample.span = None
    return sample


def build_vevo_fm(quick: bool):
    import torch

    from models.vevo.flow_matching import DEFAULT_CFG, DEFAULT_RESCALE_CFG, build_fm_model
    from models.vevo.fm_ar_configs import FMConfig, official_checkpoint

    config = official_checkpoint("Vq8192ToMels", FMConfig).config
    n_prompt, n_target = (50, 100) if quick else (150, 250)
    model = build_fm_model(config, seed=0)
    g = _gen()
    codes = torch.randint(0, config.cond_codebook_size, (1, n_prompt + n_target), generator=g)
    prompt_mel = torch.randn(1, n_prompt, config.mel_dim, generator=g)

    def sample() -> int:
        model.generate(codes, prompt_mel, n_timesteps=1, cfg=DEFAULT_CFG, rescale_cfg=DEFAULT_RESCALE_CFG, seed=0)
        return 1
    return sample


def _dualcodec(quick: bool):
    import torch

    from models.dualcodec.checkpoints import build_dualcodec
    from models.dualcodec.configs import official_config

    codec = build_dualcodec(official_config("12hz_v1"), seed=0)
    seconds = 2.0 if quick else 5.0
    g = _gen()
    length = int(seconds * codec.sample_rate)
    audio = 0.1 * torch.randn(1, 1, length, generator=g)
    frames = -(-length // codec.hop_length)
    semantic = torch.randn(1, codec.semantic_dim, frames, generator=g)
    return codec, audio, semantic


def build_dualcodec_enc(quick: bool):
    codec, audio, semantic = _dualcodec(quick)

    def sample() -> int:
        codec.encode(audio, semantic, codec.max_quantizers)
        return 1
    return sample


def build_dualcodec_dec(quick: bool):
    codec, audio, semantic = _dualcodec(quick)
    semantic_codes, acoustic_codes = codec.encode(audio, semantic, codec.max_quantizers)

    def sample() -> int:
        codec.decode(semantic_codes, acoustic_codes)
        return 1
    return sample


def build_bigvgan(quick: bool):
    import dataclasses

    import numpy as np

    from models.vocoders.configs import tiny_config
    from models.vocoders.vocoder import build_vocoder

    # The tiny config keeps BigVGAN v2's stage layout; the official width is 1536 channels.
    tiny = tiny_config("bigvgan")
    config = dataclasses.replace(tiny, generator=dataclasses.replace(tiny.generator, upsample_initial_channel=1536))
    vocoder = build_vocoder("bigvgan", config=config, seed=0)
    seconds = 1.0 if quick else 2.0
    frames = int(seconds * config.mel.sample_rate / config.mel.hop_length)
    mel = (np.random.default_rng(SEED).standard_normal((config.generator.n_mels, frames)) - 5.0).astype(np.float32)

    def sample() -> int:
        vocoder.vocode([mel])
        return 1
    return sample


def build_audioldm_unet(quick: bool):
    import torch

    from bench_tta import AUDIOLDM_PROMPT, build_audioldm_diffusers

    model, _ = build_audioldm_diffusers(seed=0)
    seconds = 5.0 if quick else 10.0
    frames = model.mel_frames(seconds) // model.vae_scale_factor
    g = _gen()
    sample_in = torch.randn(2, int(model.unet.config.in_channels), frames, model.mel_bins // model.vae_scale_factor,
                            generator=g)
    with torch.inference_mode():
        labels = torch.cat([model._embed(""), model._embed(AUDIOLDM_PROMPT)])
    t = torch.tensor(500)

    def sample() -> int:
        with torch.inference_mode():
            model.unet(sample_in.to(model.dtype), t, encoder_hidden_states=None, class_labels=labels)
        return 1
    return sample


def build_amphion_unet(quick: bool):
    import torch

    from bench_tta import AUDIOLDM_PROMPT, build_audioldm_amphion
    from models.audioldm.sampler import _guided_eps

    model, _ = build_audioldm_amphion(seed=0)
    latents = torch.randn(model.latent_shape, generator=_gen())
    cond_ids, uncond_ids = model.text_encoder.token_ids(AUDIOLDM_PROMPT, None)
    with torch.inference_mode():
        uncond, cond = model.text_encoder.embed_pair(cond_ids, uncond_ids)
    t = torch.tensor([500])

    def sample() -> int:
        with torch.inference_mode():
            _guided_eps(model.unet, latents, t, uncond, cond, 4.0)
        return 1
    return sample


def build_picoaudio_unet(quick: bool):
    import torch

    from bench_tta import build_picoaudio
    from models.picoaudio.diffusion import LATENT_BINS, LATENT_FRAMES, text_condition

    model, _ = build_picoaudio(seed=0)
    unet = model.unet
    g = _gen()
    frames = LATENT_FRAMES // 2 if quick else LATENT_FRAMES
    model_in = torch.randn(2, int(unet.config.in_channels), frames, LATENT_BINS, generator=g)
    # CLAP's text embedding: text_condition repeats each value twice to the cross-attention width.
    states = text_condition(torch.randn(1, int(unet.config.cross_attention_dim) // 2, generator=g))
    states = torch.cat([torch.zeros_like(states), states])
    mask = torch.ones(2, 1, dtype=torch.bool)
    t = torch.tensor(500)

    def sample() -> int:
        with torch.inference_mode():
            unet(model_in, t, encoder_hidden_states=states, encoder_attention_mask=mask)
        return 1
    return sample


UNITS: dict[str, Unit] = {
    "t2s": Unit("MaskGCT T2S step", "step", build_t2s),
    "s2a": Unit("MaskGCT S2A step", "step", build_s2a),
    "vevo_ar": Unit("Vevo AR decode", "token", build_vevo_ar),
    "vevo_fm": Unit("Vevo FM step", "step", build_vevo_fm),
    "dualcodec_enc": Unit("DualCodec encode", "pass", build_dualcodec_enc),
    "dualcodec_dec": Unit("DualCodec decode", "pass", build_dualcodec_dec),
    "bigvgan": Unit("BigVGAN vocode", "pass", build_bigvgan),
    "audioldm_unet": Unit("AudioLDM UNet (CFG batch)", "step", build_audioldm_unet),
    "amphion_unet": Unit("Amphion AudioLDM UNet step", "step", build_amphion_unet),
    "picoaudio_unet": Unit("PicoAudio UNet (CFG batch)", "step", build_picoaudio_unet),
}


# ---------------------------------------------------------------------------------------------
# Worker: one tree, one unit, one thread count; answers "run" with one sample
# ---------------------------------------------------------------------------------------------


def _reply(obj: dict) -> None:
    sys.stdout.write(REPLY + json.dumps(obj) + "\n")
    sys.stdout.flush()


def worker(unit_name: str, tree: str, threads: int, quick: bool, warmup: int) -> None:
    # The scripts' helpers put their own tree first on sys.path when imported: the measured tree
    # goes in front again before anything imports ``models``.
    sys.path.insert(0, str(SCRIPTS))
    import bench_common  # noqa: F401  (its import-time path insert happens now, not later)

    sys.path.insert(0, tree)
    import torch

    import models
    from deployments import runtime

    where = Path(models.__file__).resolve()
    if not where.is_relative_to(Path(tree).resolve()):
        raise SystemExit(f"models imported from {where}, not from {tree}")
    torch.set_num_threads(threads)
    allocator = getattr(runtime, "configure_allocator", lambda: False)()   # as a model replica starts
    t0 = time.perf_counter()
    with torch.inference_mode():
        sample = UNITS[unit_name].build(quick)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for _ in range(warmup):
            sample()
    warmup_s = time.perf_counter() - t0
    _reply({"ready": True, "build_s": round(build_s, 2), "warmup_s": round(warmup_s, 2), "models": str(where),
            "threads": torch.get_num_threads(), "allocator_tuned": allocator})
    for line in sys.stdin:
        if line.strip() != "run":
            break
        c0, w0 = time.process_time(), time.perf_counter()
        with torch.inference_mode():
            work = sample()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        span = getattr(sample, "span", None)
        if span is not None:          # the unit timed its own part (AR: decode only)
            cpu *= span / wall
            wall = span
        _reply({"s": wall / work, "cpu_s": cpu / work})


class Worker:
    def __init__(self, side: str, tree: Path, unit: str, threads: int, opts, extra_env: dict) -> None:
        self.side = side
        env = {**os.environ, **extra_env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "PYTHONPATH": str(tree)}
        argv = [sys.executable, str(Path(__file__).resolve()), "--worker", unit, "--tree", str(tree),
                "--threads-one", str(threads), "--warmup", str(opts.warmup)] + (["--quick"] if opts.quick else [])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=str(tree), env=env)
        self.ready = self._read()

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(REPLY):
                return json.loads(line[len(REPLY):])
        err = self.proc.stderr.read()[-3000:]
        raise RuntimeError(f"{self.side} worker ended ({self.proc.wait()}): {err}")

    def sample(self) -> dict:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ---------------------------------------------------------------------------------------------
# Parent
# ---------------------------------------------------------------------------------------------


def parse_env(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def measure(unit: str, threads: int, trees: dict, envs: dict, opts) -> dict:
    workers: dict[str, Worker] = {}
    try:
        for side in ("before", "after"):        # built one after the other: builds are not measured
            workers[side] = Worker(side, trees[side], unit, threads, opts, envs[side])
        samples: dict[str, list[dict]] = {"before": [], "after": []}
        for r in range(opts.repeats):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for side in order:
                samples[side].append(workers[side].sample())
                time.sleep(opts.pause)
        out = {"threads": threads}
        for side in ("before", "after"):
            walls = [s["s"] for s in samples[side]]
            cpus = [s["cpu_s"] for s in samples[side]]
            out[side] = {"median_s": statistics.median(walls), "min_s": min(walls),
                         "cpu_median_s": statistics.median(cpus), "samples_s": [round(x, 4) for x in walls],
                         "build_s": workers[side].ready["build_s"], "warmup_s": workers[side].ready["warmup_s"],
                         "allocator_tuned": workers[side].ready.get("allocator_tuned")}
        out["speedup"] = out["before"]["median_s"] / out["after"]["median_s"]
        out["cpu_speedup"] = out["before"]["cpu_median_s"] / out["after"]["cpu_median_s"]
        pairs = [b["s"] / a["s"] for b, a in zip(samples["before"], samples["after"])]
        out["paired_speedup_median"] = statistics.median(pairs)
        return out
    finally:
        for w in workers.values():
            w.close()


def format_table(results: dict) -> str:
    lines = ["| unit | threads | before | after | speed-up | (CPU s) |", "| --- | --- | --- | --- | --- | --- |"]
    for name, per_threads in results["units"].items():
        unit = UNITS[name]
        for r in per_threads:
            if "error" in r:
                lines.append(f"| {unit.label} | {r['threads']} | error: {r['error'][:80]} | | | |")
                continue
            b, a = r["before"]["median_s"], r["after"]["median_s"]
            if unit.per == "token":
                cell_b, cell_a = f"{1 / b:.2f} tok/s", f"{1 / a:.2f} tok/s"
            else:
                cell_b, cell_a = f"{b:.3f} s", f"{a:.3f} s"
            lines.append(f"| {unit.label} | {r['threads']} | {cell_b} | {cell_a} | {r['speedup']:.2f}x | "
                         f"{r['cpu_speedup']:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", default=",".join(UNITS), help=f"comma-separated, of: {', '.join(UNITS)}")
    parser.add_argument("--threads", default="1,2", help="torch threads to measure with, comma-separated")
    parser.add_argument("--before", type=Path, default=DEFAULT_BEFORE, help="the tree before (default ../wt-base)")
    parser.add_argument("--after", type=Path, default=AFTER_ROOT, help="the tree after (default this one)")
    parser.add_argument("--before-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--after-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeats", type=int, default=5, help="timed samples per side (medians of these)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed samples per worker first")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between samples (threads go idle)")
    parser.add_argument("--quick", action="store_true", help="short inputs (official layer sizes) and 3 repeats")
    parser.add_argument("--name", default="compute", help="bench_results/<name>.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--threads-one", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.worker:
        worker(opts.worker, opts.tree, opts.threads_one, opts.quick, opts.warmup)
        return
    if opts.quick and opts.repeats == parser.get_default("repeats"):
        opts.repeats = 3
    units = [u for u in opts.units.split(",") if u]
    unknown = sorted(set(units) - set(UNITS))
    if unknown:
        raise SystemExit(f"unknown units {unknown}; known: {', '.join(UNITS)}")
    threads = [int(t) for t in opts.threads.split(",") if t]
    trees = {"before": opts.before.resolve(), "after": opts.after.resolve()}
    for side, tree in trees.items():
        if not (tree / "models" / "__init__.py").is_file():
            raise SystemExit(f"--{side} {tree} is not a source tree of this project")
    envs = {side: parse_env(getattr(opts, f"{side}_env")) for side in trees}
    import platform

    import torch

    started = time.perf_counter()
    results: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                 "torch": torch.__version__},
                     "trees": {k: str(v) for k, v in trees.items()}, "env": envs,
                     "options": {k: v for k, v in vars(opts).items() if k not in ("worker", "tree", "threads_one")
                                 and not isinstance(v, Path)},
                     "units": {}}
    for unit in units:
        results["units"][unit] = []
        for n in threads:
            t0 = time.perf_counter()
            try:
                r = measure(unit, n, trees, envs, opts)
            except Exception as exc:   # one unit's failure leaves the others' figures
                r = {"threads": n, "error": f"{type(exc).__name__}: {exc}"[-2000:]}
            r["wall_s"] = round(time.perf_counter() - t0, 1)
            results["units"][unit].append(r)
            brief = r.get("error") or (f"before {r['before']['median_s']:.4f} s, after {r['after']['median_s']:.4f} s, "
                                       f"{r['speedup']:.2f}x (CPU {r['cpu_speedup']:.2f}x)")
            print(f"[{unit} x{n}] {brief} ({r['wall_s']} s)", file=sys.stderr, flush=True)
            save(results, opts.name, started)     # after every measurement: a long run keeps what it has
    print(save(results, opts.name, started))


def save(results: dict, name: str, started: float) -> str:
    """Write bench_results/<name>.json (with the table so far); returns the table."""
    results["total_wall_s"] = round(time.perf_counter() - started, 1)
    results["table"] = format_table(results)
    out_dir = AFTER_ROOT / "bench_results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2))
    return results["table"]


if __name__ == "__main__":
    main()

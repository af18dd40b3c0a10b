"""SVC and Noro cost on this CPU at the official sizes (issue 12), with seeded random float32 weights
(no checkpoint can be downloaded here), one model per child process, one child at a time:

  svc            the four SVC acoustic models on --seconds of 24 kHz audio (hop 256: T = 937 frames for
                 10 s), random frame features of the models' input shapes (Praat-like F0 with unvoiced
                 frames, energy, Whisper [T, 1024], ContentVec [T, 256], singer 0):
                   multiplecontents  MultipleContentsSVC (the release's args.json sizes, 384 x 20
                                     DiffWaveNet): one PNDM denoiser call (the seconds between
                                     consecutive ``on_step`` callbacks of the model's own forward at the
                                     reference's default 1000 steps, stopped after 1 + --repeats calls;
                                     the first, which also runs the ConditionEncoder, is the warm-up),
                                     the denoiser alone, the ConditionEncoder alone, and the total of
                                     the default 1000 steps = 1009 calls
                   comosvc_teacher   DiffComoSVC teacher (recipe sizes): one Euler call the same way
                                     (encoder = ConditionEncoder + Conformer mu), default 40 steps = 41 calls
                   comosvc_student   DiffComoSVC student: its single call (the whole forward)
                   transformer_svc   TransformerSVC (recipe sizes): one forward
                   vits_svc          VitsSVC (recipe sizes): one ``infer`` (audio out), and its decoder alone
  svc_frontends  what the SVC routes compute before and after the acoustic model, for --seconds:
                   whisper           Whisper-medium encoder features (``SVCWhisper``: 30 s window, 24 layers)
                   contentvec        ContentVec (HuBERT-base to layer 12 + final_proj)
                   praat_mel         Praat F0, mel + energy, the 24 -> 16 kHz resampling
                   singing_vocoder   Amphion's singing BigVGAN (``bigvgan_large``: 1536 channels,
                                     [4,4,2,2,2,2]) on the T-frame mel
  noro           Noro on --seconds of 16 kHz audio (padded to a multiple of 1600: 808 frames for 10 s):
                   noro_step         one Euler step of the official recipe (47-layer WaveNet, hidden 512)
                                     the same callback way, the estimator alone, the speaker + condition
                                     encoders (--reference-seconds of reference), and the default 200 steps
                   noro_frontends    HuBERT-base to layer 9 + k-means (--noro-clusters random centres:
                                     the real K is unpublished) + WORLD F0, and the reference mel
                   noro_vocoder      a BigVGAN at Noro's 16 kHz / 80 bands / hop 200 (stages 5,5,4,2)
                                     at BigVGAN-v2 width (1536 channels): Noro's vocoder is unpublished,
                                     so this size is an assumption

Every measurement runs once as a warm-up, then --repeats times (fewer when the repeats would pass
--pass-budget seconds; the JSON's ``n`` says how many ran); the figure is the median. The machine may be
shared: each child first waits (up to --wait-quiet s) for the CPUs to go idle, and every sample records
how many cores other processes kept busy meanwhile (``bench_tta.Clock``); figures are the medians of the
undisturbed samples when at least half are, else of all (``contended``, marked * in the tables), and a
contended child is rerun up to --retries times (not once the run has taken --rerun-until seconds), the
least contended run kept. No served part: the SVC and Noro routes are not wired yet, and Ray is never
started.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/bench_svc_noro.py                 # everything (~5-8 min on 2 cores)
    .venv/bin/python scripts/bench_svc_noro.py --only noro --repeats 2           # one part

The JSON that goes to bench_results/<--name>.json (default svc_noro) is printed, then a readable summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

from bench_common import ChildBench, run_two_part_benchmark, speech_like_wav, wav_samples
from bench_maskgct import wait_quiet
from bench_tta import Clock, millions, params, sample_stats

PARTS: dict[str, tuple[str, ...]] = {
    "svc": ("multiplecontents", "comosvc_teacher", "comosvc_student", "transformer_svc", "vits_svc"),
    "svc_frontends": ("whisper", "contentvec", "praat_mel", "singing_vocoder"),
    "noro": ("noro_step", "noro_frontends", "noro_vocoder"),
}
ALL_CHILDREN = tuple(name for names in PARTS.values() for name in names)
SEED = 1234
SVC_SR = 24000
NORO_SR = 16000
CONTENT_SR = 16000
# The figures whose contention decides whether a child is rerun.
KEY_MEASURES = {
    "multiplecontents": ("step", "denoiser"), "comosvc_teacher": ("step", "denoiser"),
    "comosvc_student": ("forward",), "transformer_svc": ("forward",), "vits_svc": ("infer",),
    "whisper": ("pass",), "contentvec": ("pass",), "praat_mel": ("praat_f0", "mel_energy"),
    "singing_vocoder": ("pass",), "noro_step": ("step", "estimator"), "noro_frontends": ("source_features",),
    "noro_vocoder": ("pass",),
}


class _Enough(Exception):
    """Raised from a sampler's step callback once enough calls were timed."""


# ---------------------------------------------------------------------------------------------
# Timing helpers (the child side)
# ---------------------------------------------------------------------------------------------


def repeat_timed(fn, opts: argparse.Namespace, warmup=None) -> dict:
    """``warmup()`` (default ``fn()``) once, then ``fn()`` up to --repeats times, stopping early once the
    timed calls have taken --pass-budget seconds; ``bench_tta.sample_stats`` of them. A call shorter than
    --min-sample seconds is repeated within each sample (``calls_per_sample``; the figure is per call):
    the busy-core figures come from /proc/stat's 10 ms ticks, too coarse for a few-ms interval."""
    t0 = time.perf_counter()
    (warmup or fn)()
    warm_s = time.perf_counter() - t0
    inner = 1
    if warmup is None and warm_s < opts.min_sample:
        inner = min(1000, math.ceil(opts.min_sample / max(warm_s, 1e-4)))
    clock = Clock()
    clock.mark()
    started = time.perf_counter()
    for i in range(opts.repeats):
        for _ in range(inner):
            fn()
        clock.mark()
        if time.perf_counter() - started > opts.pass_budget:
            break
    stats = sample_stats([(wall / inner, other) for wall, other in clock.intervals()], opts.quiet_cores)
    stats.update(calls_per_sample=inner, cut_by_budget=stats["n"] < opts.repeats)
    return stats


def sampler_steps(run, opts: argparse.Namespace) -> dict:
    """``run(on_step)`` (a sampler at its default step count) stopped after 1 + --repeats calls: the
    intervals between consecutive callbacks, the first (which also ran everything before the first
    call, and is the warm-up) reported apart."""
    clock = Clock()
    calls = 1 + opts.repeats

    def on_step(_done, _total):
        clock.mark()
        if len(clock.points) > calls:
            raise _Enough

    clock.mark()
    try:
        run(on_step)
    except _Enough:
        pass
    intervals = clock.intervals()
    stats = sample_stats(intervals[1:], opts.quiet_cores)
    stats["first_interval_s"] = round(intervals[0][0], 4)
    return stats


def timed_build(build):
    t0 = time.perf_counter()
    model = build()
    return model, round(time.perf_counter() - t0, 1)


def model_facts(model, build_s: float, **extra) -> dict:
    n = params(model)
    return {"params": n, "params_millions": millions(n), "build_s": build_s, **extra}


def diffusion_totals(out: dict, pre_s: float, step_s: float, calls: int, seconds: float) -> None:
    """The default run's estimate: what runs once before the sampler + ``calls`` x one call."""
    total = pre_s + calls * step_s
    out.update(default_calls=calls, default_total_s=round(total, 1), rtf=round(total / seconds, 2))


def speech(seconds: float, sr: int):
    """Seeded speech-like audio (``bench_common.speech_like_wav``) as float32 samples."""
    return wav_samples(speech_like_wav(seconds, sr), sr)


# ---------------------------------------------------------------------------------------------
# Part svc: the acoustic models
# ---------------------------------------------------------------------------------------------


def svc_inputs(opts: argparse.Namespace, condition) -> tuple[int, tuple]:
    """Random frame features for --seconds of 24 kHz audio, shaped as the front ends hand them over."""
    import numpy as np
    import torch

    from models.svc.frontends import SVCFrontendConfig, frame_pitch_and_uv

    frames = SVCFrontendConfig().num_frames(int(opts.seconds * SVC_SR))
    rng = np.random.default_rng(SEED)
    f0 = rng.uniform(120.0, 600.0, frames - 3)     # Praat's track: a few frames short of T
    f0[rng.random(f0.shape) < 0.25] = 0.0          # unvoiced frames
    pitch, uv = frame_pitch_and_uv(f0, frames)
    gen = torch.Generator().manual_seed(SEED)
    energy = torch.rand(1, frames, generator=gen) * 1.5
    whisper = torch.randn(1, frames, condition.whisper_dim, generator=gen)
    contentvec = torch.randn(1, frames, condition.contentvec_dim, generator=gen)
    spk_id = torch.zeros(1, 1, dtype=torch.long)
    return frames, (torch.from_numpy(pitch)[None], torch.from_numpy(uv)[None], energy, whisper, contentvec, spk_id)


def child_multiplecontents(opts: argparse.Namespace) -> dict:
    import torch

    from models.svc.multiplecontents import build_multiplecontents, official_config

    config = official_config()
    model, build_s = timed_build(lambda: build_multiplecontents(config, seed=0))
    frames, inputs = svc_inputs(opts, config.condition_encoder)
    encoder, denoiser = model[0], model[1]
    out = model_facts(model, build_s, frames=frames, config={
        "base_channel": config.denoiser.bidilconv.base_channel, "n_res_block": config.denoiser.bidilconv.n_res_block})
    out["condition_encoder"] = repeat_timed(lambda: encoder(*inputs), opts)
    cond = encoder(*inputs)
    x = torch.randn(1, frames, config.n_mel, generator=torch.Generator().manual_seed(SEED))
    t = torch.tensor([999])
    out["denoiser"] = repeat_timed(lambda: denoiser(x, t, cond), opts)
    out["step"] = sampler_steps(lambda cb: model(*inputs, seed=SEED, on_step=cb), opts)
    out["default_steps"] = model.default_steps
    diffusion_totals(out, out["condition_encoder"]["s"], out["step"]["s"], model.denoiser_calls(), opts.seconds)
    return out


def child_comosvc(kind: str, opts: argparse.Namespace) -> dict:
    import torch

    from models.svc.comosvc import STUDENT_SIGMA, build_comosvc, recipe_config

    config = recipe_config(kind)
    model, build_s = timed_build(lambda: build_comosvc(config, seed=0))
    frames, inputs = svc_inputs(opts, config.condition_encoder)
    decoder = model[1].decoder
    net = decoder.sampling_denoiser
    out = model_facts(model, build_s, frames=frames)
    if kind == "student":   # the checkpoint holds three denoisers; only the EMA copy samples
        unused = params(decoder.denoise_fn) + params(decoder.denoise_fn_pretrained)
        out["sampling_params_millions"] = millions(out["params"] - unused)
    mask = torch.ones(1, frames, 1)
    out["encoder"] = repeat_timed(lambda: model.mu(model[0](*inputs), mask), opts)
    mu = model.mu(model[0](*inputs), mask)
    x = torch.randn(1, frames, config.n_mel, generator=torch.Generator().manual_seed(SEED))
    c_noise = torch.tensor([math.log(STUDENT_SIGMA) / 4])
    out["denoiser"] = repeat_timed(lambda: net(x, c_noise, mu), opts)
    if kind == "student":
        out["forward"] = repeat_timed(lambda: model(*inputs, seed=SEED), opts)
        out.update(default_calls=1, default_total_s=out["forward"]["s"],
                   rtf=round(out["forward"]["s"] / opts.seconds, 3))
    else:
        out["step"] = sampler_steps(lambda cb: model(*inputs, seed=SEED, on_step=cb), opts)
        out["default_steps"] = model.default_steps
        diffusion_totals(out, out["encoder"]["s"], out["step"]["s"], model.denoiser_calls(), opts.seconds)
    return out


def child_comosvc_teacher(opts: argparse.Namespace) -> dict:
    return child_comosvc("teacher", opts)


def child_comosvc_student(opts: argparse.Namespace) -> dict:
    return child_comosvc("student", opts)


def child_transformer_svc(opts: argparse.Namespace) -> dict:
    from models.svc.transformer_svc import build_transformer_svc, recipe_config

    config = recipe_config()
    model, build_s = timed_build(lambda: build_transformer_svc(config, seed=0))
    frames, inputs = svc_inputs(opts, config.condition_encoder)
    out = model_facts(model, build_s, frames=frames)
    out["condition_encoder"] = repeat_timed(lambda: model[0](*inputs), opts)
    out["forward"] = repeat_timed(lambda: model(*inputs), opts)
    out.update(default_calls=1, default_total_s=out["forward"]["s"], rtf=round(out["forward"]["s"] / opts.seconds, 3))
    return out


def child_vits_svc(opts: argparse.Namespace) -> dict:
    import torch

    from models.svc.vits_svc import build_vits_svc, recipe_config

    config = recipe_config()
    model, build_s = timed_build(lambda: build_vits_svc(config, seed=0))
    frames, inputs = svc_inputs(opts, config.condition_encoder)
    out = model_facts(model, build_s, frames=frames,
                      inference_params_millions=millions(params(model) - params(model.enc_q)))
    out["condition_encoder"] = repeat_timed(lambda: model.condition_encoder(*inputs), opts)
    last: dict = {}
    out["infer"] = repeat_timed(lambda: last.update(audio=model.infer(*inputs)), opts)
    out["audio_samples"] = int(last["audio"].shape[-1])
    z = torch.randn(1, config.inter_channels, frames, generator=torch.Generator().manual_seed(SEED))
    f0 = inputs[0].float()
    out["decoder"] = repeat_timed(lambda: model.dec(z, f0), opts)
    out.update(default_calls=1, default_total_s=out["infer"]["s"], rtf=round(out["infer"]["s"] / opts.seconds, 3))
    return out


# ---------------------------------------------------------------------------------------------
# Part svc_frontends
# ---------------------------------------------------------------------------------------------


def svc_source(opts: argparse.Namespace):
    """(24 kHz source, its 16 kHz resampling) of --seconds."""
    from models.audio.resample import to_rate

    wave = speech(opts.seconds, SVC_SR)
    return wave, to_rate(wave, SVC_SR, CONTENT_SR)


def child_whisper(opts: argparse.Namespace) -> dict:
    from models.svc.whisper_features import OFFICIAL_WHISPER_DIMS, build_svc_whisper, whisper_config_from_dims

    model, build_s = timed_build(lambda: build_svc_whisper(whisper_config_from_dims(OFFICIAL_WHISPER_DIMS), seed=0))
    _, wav16 = svc_source(opts)
    out = model_facts(model, build_s, dims={k: OFFICIAL_WHISPER_DIMS[k] for k in
                                            ("n_audio_state", "n_audio_layer", "n_audio_head", "n_audio_ctx")})
    last: dict = {}
    out["pass"] = repeat_timed(lambda: last.update(features=model([wav16], [opts.seconds])[0]), opts)
    out["output_frames"] = int(last["features"].shape[0])
    out["rtf"] = round(out["pass"]["s"] / opts.seconds, 3)
    return out


def child_contentvec(opts: argparse.Namespace) -> dict:
    from models.svc.contentvec import ContentVecConfig, build_contentvec

    config = ContentVecConfig()
    model, build_s = timed_build(lambda: build_contentvec(config, seed=0))
    _, wav16 = svc_source(opts)
    out = model_facts(model, build_s, output_layer=config.output_layer)
    last: dict = {}
    out["pass"] = repeat_timed(lambda: last.update(features=model([wav16], [opts.seconds])[0]), opts)
    out["output_frames"] = int(last["features"].shape[0])
    out["rtf"] = round(out["pass"]["s"] / opts.seconds, 3)
    return out


def child_praat_mel(opts: argparse.Namespace) -> dict:
    from models.audio.resample import to_rate
    from models.svc.frontends import SVCFrontendConfig, mel_and_energy, praat_f0

    cfg = SVCFrontendConfig()
    wave, _ = svc_source(opts)
    out: dict = {"params": 0, "params_millions": 0.0, "build_s": 0.0, "frames": cfg.num_frames(wave.shape[0]),
                 "praat_frames": int(praat_f0(wave, cfg).shape[0])}
    out["praat_f0"] = repeat_timed(lambda: praat_f0(wave, cfg), opts)
    out["mel_energy"] = repeat_timed(lambda: mel_and_energy(wave, cfg), opts)
    out["resample_16k"] = repeat_timed(lambda: to_rate(wave, SVC_SR, CONTENT_SR), opts)
    total = sum(out[k]["s"] for k in ("praat_f0", "mel_energy", "resample_16k"))
    out.update(pass_total_s=round(total, 4), rtf=round(total / opts.seconds, 4))
    return out


def vocoder_child(config, frames: int, opts: argparse.Namespace, what: str) -> dict:
    """A BigVGAN of ``config`` (seeded random weights) on a random log-mel of ``frames`` frames; the
    warm-up vocodes a 1 s slice (a full pass is the slowest measurement here)."""
    import numpy as np

    from models.vocoders.vocoder import build_vocoder

    vocoder, build_s = timed_build(lambda: build_vocoder("bigvgan", config=config, seed=0))
    rng = np.random.default_rng(SEED)
    mel = (rng.standard_normal((config.generator.n_mels, frames)) - 5.0).astype(np.float32)
    per_second = int(config.mel.sample_rate // config.mel.hop_length)
    g = config.generator
    out = model_facts(vocoder.generator, build_s, what=what, frames=frames, sample_rate=config.mel.sample_rate,
                      config={"upsample_rates": list(g.upsample_rates),
                              "upsample_kernel_sizes": list(g.upsample_kernel_sizes),
                              "upsample_initial_channel": g.upsample_initial_channel})
    out["pass"] = repeat_timed(lambda: vocoder.vocode([mel]), opts,
                               warmup=lambda: vocoder.vocode([mel[:, :per_second]]))
    out["rtf"] = round(out["pass"]["s"] / opts.seconds, 3)
    return out


def child_singing_vocoder(opts: argparse.Namespace) -> dict:
    from models.svc.frontends import SVCFrontendConfig
    from models.svc.svc_vocoder import tiny_singing_vocoder_config

    tiny = tiny_singing_vocoder_config()
    config = dataclasses.replace(tiny, generator=dataclasses.replace(tiny.generator, upsample_initial_channel=1536),
                                 source_format="bench")
    frames = SVCFrontendConfig().num_frames(int(opts.seconds * SVC_SR))
    return vocoder_child(config, frames, opts, "Amphion singing BigVGAN (bigvgan_large: 1536 ch, tanh + bias)")


# ---------------------------------------------------------------------------------------------
# Part noro
# ---------------------------------------------------------------------------------------------


def noro_frames(opts: argparse.Namespace, cfg) -> int:
    from models.noro.frontends import pad_source

    return len(pad_source(speech(opts.seconds, NORO_SR))) // cfg.mel.hop_length


def child_noro_step(opts: argparse.Namespace) -> dict:
    import torch

    from models.noro.configs import DEFAULT_SIGMA, DEFAULT_STEPS, official_config
    from models.noro.frontends import reference_features
    from models.noro.model import build_noro_model

    cfg = official_config()
    model, build_s = timed_build(lambda: build_noro_model(cfg, seed=0))
    frames = noro_frames(opts, cfg)
    reference = reference_features(speech(opts.reference_seconds, NORO_SR), cfg)
    gen = torch.Generator().manual_seed(SEED)
    content = torch.randn(1, frames, cfg.content_dim, generator=gen)
    pitch = torch.randn(1, frames, generator=gen)
    noise = torch.randn(1, frames, cfg.n_mels, generator=gen)
    est = cfg.diffusion.estimator
    out = model_facts(model, build_s, frames=frames, reference_frames=int(reference.mel.shape[1]),
                      config={"layers": est.layers, "hidden": est.hidden, "heads": est.heads,
                              "cross_attn_every": est.cross_attn_every})

    def encoders():
        return model.speaker(reference.mel, reference.mask), model.condition(content, pitch)

    out["encoders"] = repeat_timed(encoders, opts)
    speaker, condition = encoders()
    t = torch.tensor([0.5])
    out["estimator"] = repeat_timed(lambda: model.estimate(noise, condition, speaker, t), opts)
    out["step"] = sampler_steps(lambda cb: model.generate(content, pitch, reference.mel, reference.mask, noise,
                                                          steps=DEFAULT_STEPS, temperature=DEFAULT_SIGMA,
                                                          on_step=cb), opts)
    out["default_steps"] = DEFAULT_STEPS
    diffusion_totals(out, out["encoders"]["s"], out["step"]["s"], DEFAULT_STEPS, opts.seconds)
    return out


def child_noro_frontends(opts: argparse.Namespace) -> dict:
    import torch

    from models.noro.configs import official_config
    from models.noro.frontends import (
        hubert_input, pad_source, quantise_content, reference_features, source_features,
    )
    from models.noro.hubert import HUBERT_BASE_PARAMS, NORO_LAYER, build_hubert
    from models.noro.kmeans import KMeansQuantizer, random_centres
    from models.noro.pitch import source_pitch

    cfg = official_config()
    hubert, build_s = timed_build(lambda: build_hubert(HUBERT_BASE_PARAMS, seed=0))
    kmeans = KMeansQuantizer(random_centres(opts.noro_clusters, cfg.content_dim, seed=1))
    source = speech(opts.seconds, NORO_SR)
    reference = speech(opts.reference_seconds, NORO_SR)
    padded = pad_source(source)
    wav = hubert_input(torch.from_numpy(padded)[None])
    out = model_facts(hubert, build_s, layer=NORO_LAYER, clusters=opts.noro_clusters,
                      frames=len(padded) // cfg.mel.hop_length)
    out["hubert"] = repeat_timed(lambda: hubert(wav), opts)
    feats = hubert(wav)
    out["kmeans"] = repeat_timed(lambda: quantise_content(feats, kmeans), opts)
    out["world_f0"] = repeat_timed(lambda: source_pitch(padded, cfg.f0), opts)
    out["reference_mel"] = repeat_timed(lambda: reference_features(reference, cfg), opts)
    out["source_features"] = repeat_timed(lambda: source_features(source, hubert, kmeans, cfg), opts)
    total = out["source_features"]["s"] + out["reference_mel"]["s"]
    out.update(pass_total_s=round(total, 3), rtf=round(total / opts.seconds, 3))
    return out


def child_noro_vocoder(opts: argparse.Namespace) -> dict:
    from models.noro.configs import official_config
    from models.noro.vocoder import TINY_VOCODER_CONFIG

    generator = dataclasses.replace(TINY_VOCODER_CONFIG.generator, upsample_initial_channel=1536)
    config = dataclasses.replace(TINY_VOCODER_CONFIG, generator=generator, source_format="bench")
    return vocoder_child(config, noro_frames(opts, official_config()), opts,
                         "BigVGAN v2 ending at Noro's 16 kHz / hop 200 (stages 5,5,4,2; 1536 ch; size assumed)")


CHILDREN = {
    "multiplecontents": child_multiplecontents, "comosvc_teacher": child_comosvc_teacher,
    "comosvc_student": child_comosvc_student, "transformer_svc": child_transformer_svc,
    "vits_svc": child_vits_svc, "whisper": child_whisper, "contentvec": child_contentvec,
    "praat_mel": child_praat_mel, "singing_vocoder": child_singing_vocoder, "noro_step": child_noro_step,
    "noro_frontends": child_noro_frontends, "noro_vocoder": child_noro_vocoder,
}


BENCH = ChildBench(__file__, CHILDREN, KEY_MEASURES,
                   forwarded=("threads", "repeats", "seconds", "reference_seconds", "pass_budget", "min_sample",
                              "quiet_cores", "noro_clusters"))


def selected_children(only: str | None) -> list[str]:
    if not only:
        return list(ALL_CHILDREN)
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    names: list[str] = []
    for w in wanted:
        for name in PARTS.get(w, (w,)):
            if name not in names:
                names.append(name)
    return [n for n in ALL_CHILDREN if n in names]


def official_part(opts: argparse.Namespace) -> dict:
    out = BENCH.measure(selected_children(opts.only), opts, lambda: wait_quiet(opts.wait_quiet, opts.quiet_cores),
                        "official / recipe architectures, seeded random float32 weights, CPU, one model per child "
                        "process", rerun_until=opts.rerun_until)
    out["children"] = selected_children(opts.only)
    return out


def no_served_part(opts: argparse.Namespace) -> dict:   # never called: --skip-served is fixed
    return {"skipped": "the SVC and Noro routes are not wired yet"}


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


def fig(m: dict | None, digits: int = 3) -> str:
    if not m:
        return "-"
    return f"{m['s']:.{digits}f}" + ("*" if m.get("contended") else "")


def head(r: dict) -> str:
    return f"{r['params_millions']:>8.1f} {r['peak_rss_mib']:>8.0f}"


SVC_LABELS = {"multiplecontents": "MultipleContentsSVC", "comosvc_teacher": "DiffComoSVC teacher",
              "comosvc_student": "DiffComoSVC student", "transformer_svc": "TransformerSVC", "vits_svc": "VitsSVC"}


def svc_table(o: dict, seconds: float) -> list[str]:
    lines = [f"  {'model':21} {'params M':>8} {'RSS MiB':>8} {'encoder s':>9} {'s/call':>8} {'denoiser s':>10} "
             f"{'default calls':>13} {'total s':>8} {'RTF':>6}"]
    for name, label in SVC_LABELS.items():
        r = o.get(name)
        if not r:
            continue
        if "error" in r:
            lines.append(f"  {label:21} ERROR {r['error'][:300]}")
            continue
        enc = r.get("condition_encoder") or r.get("encoder")
        call = r.get("step") or r.get("forward") or r.get("infer")
        lines.append(f"  {label:21} {head(r)} {fig(enc):>9} {fig(call):>8} {fig(r.get('denoiser')):>10} "
                     f"{r['default_calls']:>13} {r['default_total_s']:>8.2f} {r['rtf']:>6.3f}")
    notes = []
    for name in ("multiplecontents", "comosvc_teacher"):
        r = o.get(name, {})
        if "step" in r:
            notes.append(f"{SVC_LABELS[name]}: s/call = one sampler call (interval between on_step callbacks, "
                         f"first interval with the encoder {r['step']['first_interval_s']:.3f} s); default "
                         f"{r['default_steps']} steps = {r['default_calls']} calls ~ {r['default_total_s']} s")
    r = o.get("comosvc_student", {})
    if "forward" in r:
        notes.append(f"DiffComoSVC student: s/call = the whole forward (encoder + 1 call); "
                     f"{r['params_millions']} M params in the checkpoint, {r['sampling_params_millions']} M on the "
                     f"sampling path")
    r = o.get("transformer_svc", {})
    if "forward" in r:
        notes.append("TransformerSVC: s/call = one forward (ConditionEncoder + Conformer), normalised mel out")
    r = o.get("vits_svc", {})
    if "infer" in r:
        notes.append(f"VitsSVC: s/call = one infer ({r['audio_samples']} samples of 24 kHz audio out; no vocoder "
                     f"needed); its NSF-HiFiGAN decoder alone {fig(r['decoder'])} s; inference path "
                     f"{r['inference_params_millions']} M params of {r['params_millions']} M")
    frames = next((o[n]["frames"] for n in SVC_LABELS if "frames" in o.get(n, {})), None)
    lines.insert(0, f"  {seconds:g} s of 24 kHz audio = {frames} frames; RTF = total s / {seconds:g} s")
    return lines + [f"  ({n})" for n in notes]


def frontends_table(o: dict, seconds: float) -> list[str]:
    lines = [f"  {'component':36} {'params M':>8} {'RSS MiB':>8} {'s/pass':>8} {'RTF':>7}"]
    rows = (("whisper", "Whisper-medium encoder (30 s window)"), ("contentvec", "ContentVec (HuBERT-base L12)"),
            ("praat_mel", "Praat F0 + mel/energy + resample"), ("singing_vocoder", "singing BigVGAN (1536 ch)"))
    for name, label in rows:
        r = o.get(name)
        if not r:
            continue
        if "error" in r:
            lines.append(f"  {label:36} ERROR {r['error'][:300]}")
            continue
        s = r["pass_total_s"] if name == "praat_mel" else r["pass"]["s"]
        mark = "*" if r["contended"] else ""
        lines.append(f"  {label:36} {head(r)} {s:>7.3f}{mark:1} {r['rtf']:>7}")
    r = o.get("praat_mel", {})
    if "praat_f0" in r:
        lines.append(f"  (praat_mel: Praat F0 {fig(r['praat_f0'])} s, mel + energy {fig(r['mel_energy'])} s, "
                     f"24 -> 16 kHz {fig(r['resample_16k'])} s)")
    r = o.get("whisper", {})
    if "pass" in r:
        lines.append(f"  (Whisper pads every segment to 30 s: the same cost for any segment up to 30 s; "
                     f"{r['output_frames']} valid frames kept)")
    return lines


def noro_table(o: dict, seconds: float) -> list[str]:
    lines = []
    r = o.get("noro_step")
    if r and "error" in r:
        lines.append(f"  Noro model: ERROR {r['error'][:300]}")
    elif r:
        c = r["config"]
        lines.append(f"  Noro model ({c['layers']}-layer WaveNet, hidden {c['hidden']}): {r['params_millions']} M "
                     f"params, peak RSS {r['peak_rss_mib']:.0f} MiB; {r['frames']} frames (16 kHz, hop 200), reference "
                     f"{r['reference_frames']} frames")
        lines.append(f"    one Euler step {fig(r['step'])} s (first interval with the encoders "
                     f"{r['step']['first_interval_s']:.3f} s); estimator alone {fig(r['estimator'])} s; speaker + "
                     f"condition encoders {fig(r['encoders'])} s")
        lines.append(f"    default {r['default_steps']} steps ~ {r['default_total_s']} s: RTF {r['rtf']}")
    r = o.get("noro_frontends")
    if r and "error" in r:
        lines.append(f"  Noro front ends: ERROR {r['error'][:300]}")
    elif r:
        lines.append(f"  Noro front ends (HuBERT-base to layer {r['layer']}: {r['params_millions']} M params, peak "
                     f"RSS {r['peak_rss_mib']:.0f} MiB; k-means {r['clusters']} random centres):")
        lines.append(f"    HuBERT {fig(r['hubert'])} s, k-means {fig(r['kmeans'], 4)} s, WORLD F0 "
                     f"{fig(r['world_f0'])} s; source_features total {fig(r['source_features'])} s; reference mel "
                     f"{fig(r['reference_mel'], 4)} s; RTF {r['rtf']}")
    r = o.get("noro_vocoder")
    if r and "error" in r:
        lines.append(f"  Noro vocoder: ERROR {r['error'][:300]}")
    elif r:
        lines.append(f"  Noro vocoder ({r['what']}): {r['params_millions']} M params, peak RSS {r['peak_rss_mib']:.0f} "
                     f"MiB; one pass {fig(r['pass'])} s for {r['frames']} frames: RTF {r['rtf']}")
    return lines


def end_to_end(o: dict, seconds: float) -> list[str]:
    """Front ends + the acoustic model at its default steps + the vocoder, per route (estimates)."""
    fe = [o.get(n, {}) for n in ("whisper", "contentvec", "praat_mel")]
    if not all("rtf" in r for r in fe):
        return []
    front = sum(r["rtf"] for r in fe) * seconds
    voc = o.get("singing_vocoder", {}).get("pass", {}).get("s")
    lines = []
    for name, label in SVC_LABELS.items():
        r = o.get(name, {})
        if "default_total_s" not in r:
            continue
        vocoder = 0.0 if name == "vits_svc" else voc
        if vocoder is None:
            continue
        total = front + r["default_total_s"] + vocoder
        lines.append(f"  {label:21} {front:6.1f} + {r['default_total_s']:7.1f} + {vocoder:5.1f} = {total:7.1f} s: "
                     f"RTF {total / seconds:.2f}")
    noro = [o.get(n, {}) for n in ("noro_frontends", "noro_step", "noro_vocoder")]
    if all(("rtf" in r) for r in noro):
        parts = (noro[0]["pass_total_s"], noro[1]["default_total_s"], noro[2]["pass"]["s"])
        lines.append(f"  {'Noro (200 steps)':21} {parts[0]:6.1f} + {parts[1]:7.1f} + {parts[2]:5.1f} = "
                     f"{sum(parts):7.1f} s: RTF {sum(parts) / seconds:.2f}")
    if lines:
        lines.insert(0, f"End to end for {seconds:g} s (front ends + acoustic at default steps + vocoder, estimates "
                        f"from the figures above):")
    return lines


def summary(result: dict) -> str:
    o = result.get("official", {})
    opts = result["options"]
    seconds = opts["seconds"]
    m = result["machine"]
    lines = [f"SVC / Noro benchmark on {m['cpu']} ({m['cores']} cores), torch {m['torch']}, {opts['threads']} torch "
             f"threads; official / recipe sizes, seeded random float32 weights, one child process each; median of "
             f"{opts['repeats']} after a warm-up (* = contended: fewer than half the samples undisturbed)"]
    children = set(o.get("children", ()))
    if children & set(PARTS["svc"]):
        lines += ["", f"1. SVC acoustic models, {seconds:g} s of audio (per denoiser call / per forward):"]
        lines += svc_table(o, seconds)
    if children & set(PARTS["svc_frontends"]):
        lines += ["", f"2. SVC front ends and vocoder for {seconds:g} s:"]
        lines += frontends_table(o, seconds)
    if children & set(PARTS["noro"]):
        lines += ["", f"3. Noro, {seconds:g} s of 16 kHz source:"]
        lines += noro_table(o, seconds)
    e2e = end_to_end(o, seconds)
    if e2e:
        lines += [""] + e2e
    notes = []
    for name in o.get("children", ()):
        r = o.get(name, {})
        cut = [k for k, v in r.items() if isinstance(v, dict) and v.get("cut_by_budget")]
        if r.get("attempts", 1) > 1 or r.get("contended") or cut:
            notes.append(f"{name}: {r.get('attempts')} run(s), kept run {r.get('attempt')}, contended "
                         f"{r.get('contended') or 'no'}" + (f", repeats cut by --pass-budget: {cut}" if cut else ""))
    busy = [(n, o[n]["before"]["busy_cores_before"]) for n in o.get("children", ()) if "before" in o.get(n, {})]
    if busy:
        lines += ["", "Other processes before each child (busy cores): "
                  + ", ".join(f"{n} {b}" for n, b in busy)]
    lines += [f"  ({n})" for n in notes]
    lines.append(f"\nTotal wall time {result.get('total_wall_s')} s")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="SVC acoustic models, their front ends and vocoder, and Noro at official sizes with random "
                    "weights: seconds per step / pass and real-time factors on this CPU.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads of every child")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each measurement after one warm-up")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of audio (SVC: 24 kHz, Noro: 16 kHz)")
    parser.add_argument("--only", default=None,
                        help=f"comma list of parts ({', '.join(PARTS)}) or children ({', '.join(ALL_CHILDREN)})")
    parser.add_argument("--reference-seconds", type=float, default=3.0, help="Noro's reference recording")
    parser.add_argument("--noro-clusters", type=int, default=1000, help="k-means centres (the real K is unpublished)")
    parser.add_argument("--pass-budget", type=float, default=90.0,
                        help="stop repeating a measurement once its timed runs have taken this many seconds")
    parser.add_argument("--min-sample", type=float, default=0.3,
                        help="calls shorter than this many seconds are repeated within one timed sample")
    parser.add_argument("--wait-quiet", type=float, default=15,
                        help="before each child, wait up to this many seconds for other processes to go quiet")
    parser.add_argument("--quiet-cores", type=float, default=0.3,
                        help="a sample counts as undisturbed when other processes kept at most this many cores busy")
    parser.add_argument("--retries", type=int, default=1, help="reruns of a contended child")
    parser.add_argument("--rerun-until", type=float, default=540.0,
                        help="no reruns once the benchmark has run this many seconds (keeps a run bounded)")
    parser.add_argument("--child-timeout", type=float, default=600, help="seconds per child")
    parser.add_argument("--name", default="svc_noro", help="results file: bench_results/<name>.json")
    parser.add_argument("--child", choices=ALL_CHILDREN, help=argparse.SUPPRESS)
    # The shape run_two_part_benchmark expects: the official part always, no served part (not wired yet).
    parser.set_defaults(skip_official=False, skip_served=True)
    opts = parser.parse_args(argv)
    if min(opts.repeats, opts.threads, opts.noro_clusters) < 1:
        parser.error("--repeats, --threads and --noro-clusters must be at least 1")
    if opts.seconds < 1 or opts.reference_seconds < 0.5:
        parser.error("--seconds must be at least 1 and --reference-seconds at least 0.5")
    unknown = [w for w in (opts.only or "").split(",") if w.strip() and w.strip() not in PARTS
               and w.strip() not in ALL_CHILDREN]
    if unknown:
        parser.error(f"--only: unknown {unknown}; parts {list(PARTS)}, children {list(ALL_CHILDREN)}")
    return opts


def main() -> None:
    run_two_part_benchmark(parse_args(), child=BENCH.child_main, official_part=official_part, route_part=no_served_part,
                           summary=summary)


if __name__ == "__main__":
    main()

"""Text-to-audio cost on this CPU, measured in one run (each part can be skipped):

  official   the three TTA models at their official sizes with seeded random weights (nothing can be
             downloaded here, so the official architectures are built from their configs, written out
             below or taken from models/*/configs.py), each in its own child process, one at a time:
               audioldm_diffusers  the diffusers components of cvssp/audioldm-s-full-v2 (UNet2DConditionModel,
                                   AutoencoderKL, SpeechT5HifiGan, ClapTextModelWithProjection) run by
                                   ``DiffusersAudioLDM``: 10 s of audio (a 8 x 250 x 16 latent), DDIM
               audioldm_amphion    Amphion's ``AmphionAudioLDM`` (UNet 4 x 5 x 39 latent, VAE, jik876 HiFi-GAN
                                   V1, T5-base encoder): 9.984 s of audio, PNDM (steps + 1 UNet calls)
               picoaudio           ``PicoAudioPipeline`` (CLAP text tower, UNet, AudioLDM-s VAE + HiFi-GAN):
                                   10.24 s of audio (a 8 x 256 x 16 latent), DDPM
             For each: parameter counts per component, one denoising step with classifier-free guidance
             (the seconds between consecutive step callbacks of the model's own ``generate``: the
             unconditional and conditional UNet passes, the guidance and the scheduler update;
             median of --repeats after --warmup-steps), the text encoding (prompt + unconditional
             text, as a request runs it), the decode (VAE + vocoder for the whole clip), and from
             them the real-time factor (text + steps x step + decode, over the audio's seconds) at
             the step counts of --diffusers-rtf-steps / --amphion-rtf-steps / --picoaudio-rtf-steps;
             peak RSS of each child.
  served     tiny weights: the whole application on a local Ray (``bench_common.start_serve``),
             ``POST /api/tta/audioldm`` (--route-seconds of audio, --steps steps, fixed seed) and
             ``POST /api/tta/picoaudio`` (same, text built from ``GET /api/tta/picoaudio/events``) at
             concurrency 1, --requests each (p50 / p99), against the same payloads given in process to
             the deployment classes (``deployments.tta.AudioLDMService`` / ``PicoAudioService`` with
             weights="tiny", no Ray), measured before the application starts and again after it
             stops (the machine's speed drifts); the served / in-process ratios of p50 and p99
             against each, and whether both paths made the same audio. Also what the idle application costs
             (cores used by this process tree, i.e. every replica, Ray and Serve, while no request
             runs, before and after the requests; its busiest processes).

The machine may be shared: each part first waits (up to --wait-quiet s) for the CPUs to go idle,
and every timing sample (a step, a text encoding, a decode, a request) records how many cores
other processes kept busy meanwhile (machine busy time less that of the processes doing the work:
the child, this process, or this process tree with Ray). Figures are the medians of the
undisturbed samples (other processes at most --quiet-cores) when at least half of them are, else
of all of them (``contended``: a busy neighbour on one of two cores makes torch's kernels several
times slower); a contended measurement is repeated up to --retries times and the least contended
run kept. Route latencies are given over every request and over the undisturbed ones (``quiet``).

The served part starts Ray: only one Ray cluster may run on a shared machine, so run it under the
machine's Ray lock, e.g.

    flock /tmp/ray.lock .venv/bin/python scripts/bench_tta.py                    # everything (8-12 min on 2 cores)
    .venv/bin/python scripts/bench_tta.py --skip-served                          # official sizes only (no Ray)
    flock /tmp/ray.lock .venv/bin/python scripts/bench_tta.py --skip-official    # served vs in-process only

The JSON that goes to bench_results/<--name>.json (default tta) is printed, then a readable summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_common import (
    BENCH_KEY, NO_LIMITS, ROOT, add_two_part_arguments, load, percentiles, post_recording,
    run_two_part_benchmark, start_serve_retrying, stop_serve, wav_samples,
)
from bench_maskgct import _cpu_jiffies, wait_quiet

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MEASURES = ("step_cfg", "text_encoding", "decode")
MODELS = ("audioldm_diffusers", "audioldm_amphion", "picoaudio")
SEED = 1234
# Prompts. The official-size builds have no trained tokenizer: the text costs below use the
# stand-in tokenizers of the tiny profiles with the official sequence lengths where the pipeline
# pads (CLAP: 512 tokens for diffusers' AudioLDM, 77 for PicoAudio); Amphion's T5 sees the prompt
# unpadded, so its length there is the tiny character-level tokenizer's (reported).
AUDIOLDM_PROMPT = "a dog barking in the park while rain falls"
# Data files other families read at start-up (start_serve waits for every model of the application
# to be ready): environment variable -> folder of the shared data next to the repository.

# ---------------------------------------------------------------------------------------------
# Official configurations of cvssp/audioldm-s-full-v2, diffusers layout. The checkpoint's original
# config (audioldm-s-full: LDM UNet model_channels 128, channel_mult [1, 2, 3, 5], num_res_blocks 2,
# attention at 2/4/8x down, FiLM-concat conditioning on a 512-d CLAP embedding; VAE ch 128,
# ch_mult [1, 2, 4], z 8; HiFi-GAN 16 kHz, 64 mels, hop 160) converted the way diffusers'
# scripts/convert_original_audioldm_to_diffusers.py converts it.
# ---------------------------------------------------------------------------------------------

DIFFUSERS_UNET_CONFIG = dict(
    sample_size=128, in_channels=8, out_channels=8, layers_per_block=2,
    block_out_channels=(128, 256, 384, 640), cross_attention_dim=(128, 256, 384, 640),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    class_embed_type="simple_projection", projection_class_embeddings_input_dim=512, class_embeddings_concat=True,
    attention_head_dim=8,   # diffusers' default (the converter sets none)
)
DIFFUSERS_VAE_CONFIG = dict(
    sample_size=512, in_channels=1, out_channels=1, latent_channels=8, layers_per_block=2,
    block_out_channels=(128, 256, 512), down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    scaling_factor=1.0,     # learned per checkpoint; a constant multiply, no cost
)
DIFFUSERS_VOCODER_CONFIG = dict(
    model_in_dim=64, sampling_rate=16000, upsample_initial_channel=1024, upsample_rates=[5, 4, 2, 2, 2],
    upsample_kernel_sizes=[16, 16, 8, 4, 4], resblock_kernel_sizes=[3, 7, 11],
    resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]], normalize_before=False,
)
# laion/clap-htsat-unfused's text branch: RoBERTa-base + a 512-d ReLU projection.
DIFFUSERS_CLAP_TEXT_CONFIG = dict(
    vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
    hidden_act="gelu", max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5, projection_dim=512,
    projection_hidden_act="relu", pad_token_id=1, bos_token_id=0, eos_token_id=2,
)
DIFFUSERS_SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear", clip_sample=False,
    set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
)
DIFFUSERS_TEXT_TOKENS = 512     # the pipeline pads every prompt to the tokenizer's model_max_length

# Amphion's TTA vocoder: jik876 HiFi-GAN V1 at 16 kHz (hop 256, 80 mels). UNet, VAE and T5-base come
# from models/audioldm/configs.py (OFFICIAL_EXP_CONFIG, OFFICIAL_T5_REPO_CONFIG).
AMPHION_VOCODER_CONFIG = {
    "resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
    "upsample_initial_channel": 512, "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "num_mels": 80, "num_freq": 1025,
    "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 16000, "fmin": 0, "fmax": 8000,
}

# PicoAudio's VAE: AudioLDM-s-full's first stage (ckpts/ldm/vae_config.json). UNet, vocoder and CLAP
# come from models/picoaudio/configs.py (OFFICIAL_UNET_CONFIG, OFFICIAL_VOCODER_CONFIG,
# OFFICIAL_CLAP_TEXT_CONFIG).
PICOAUDIO_VAE_CONFIG = {
    "image_key": "fbank", "subband": 1, "embed_dim": 8, "time_shuffle": 1,
    "ddconfig": {"double_z": True, "z_channels": 8, "resolution": 256, "downsample_time": False, "in_channels": 1,
                 "out_ch": 1, "ch": 128, "ch_mult": [1, 2, 4], "num_res_blocks": 2, "attn_resolutions": [],
                 "dropout": 0.0},
    "scale_factor": 1.0,    # learned; a constant multiply, no cost
}


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return -1.0


def params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def millions(n: int) -> float:
    return round(n / 1e6, 2)


def median(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


class Clock:
    """Time marks, each with the machine's busy jiffies and this process's CPU time, so that every
    interval also says how many cores other processes kept busy meanwhile (a busy neighbour on one
    of two cores makes torch's kernels several times slower)."""

    def __init__(self) -> None:
        self.points: list[tuple[float, int, float]] = []

    def mark(self) -> None:
        self.points.append((time.perf_counter(), _cpu_jiffies()[0], time.process_time()))

    def intervals(self) -> list[tuple[float, float]]:
        """(seconds, other processes' busy cores) between consecutive marks."""
        out = []
        for (w0, b0, c0), (w1, b1, c1) in zip(self.points, self.points[1:]):
            wall = w1 - w0
            out.append((wall, max(0.0, (b1 - b0) / CLOCK_TICKS - (c1 - c0)) / wall))
        return out


def timed(fn, repeats: int) -> list[tuple[float, float]]:
    """``fn()`` ``repeats`` times: (seconds, other processes' busy cores) each."""
    clock = Clock()
    clock.mark()
    for _ in range(repeats):
        fn()
        clock.mark()
    return clock.intervals()


def sample_stats(samples: list[tuple[float, float]], quiet_cores: float) -> dict:
    """``s``: the median of the samples taken while other processes kept at most ``quiet_cores``
    busy, when at least half of them were; else the median of all (``contended``: True)."""
    times = [t for t, _ in samples]
    calm = [t for t, other in samples if other <= quiet_cores]
    use_calm = len(calm) >= max(1, (len(times) + 1) // 2)
    return {"s": median(calm if use_calm else times), "contended": not use_calm, "n": len(times),
            "quiet_n": len(calm), "median_all_s": median(times), "min_s": round(min(times), 4),
            "samples_s": [round(t, 4) for t in times], "other_busy_cores": [round(o, 2) for _, o in samples]}


def int_list(text: str) -> list[int]:
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


# ---------------------------------------------------------------------------------------------
# Part 1: official sizes, random weights (one child process per model)
# ---------------------------------------------------------------------------------------------


def build_audioldm_diffusers(seed: int):
    """``DiffusersAudioLDM`` over cvssp/audioldm-s-full-v2's architecture with seeded random weights."""
    import torch
    from diffusers import AudioLDMPipeline, AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import ClapTextConfig, ClapTextModelWithProjection, SpeechT5HifiGan, SpeechT5HifiGanConfig

    from models.audioldm.diffusers_pipeline import DiffusersAudioLDM, _tiny_tokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = ClapTextModelWithProjection(ClapTextConfig(**DIFFUSERS_CLAP_TEXT_CONFIG))
        unet = UNet2DConditionModel(**DIFFUSERS_UNET_CONFIG)
        vae = AutoencoderKL(**DIFFUSERS_VAE_CONFIG)
        vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(**DIFFUSERS_VOCODER_CONFIG))
    pipe = AudioLDMPipeline(vae=vae, text_encoder=text_encoder, tokenizer=_tiny_tokenizer(DIFFUSERS_TEXT_TOKENS),
                            unet=unet, scheduler=DDIMScheduler(**DIFFUSERS_SCHEDULER_CONFIG), vocoder=vocoder)
    model = DiffusersAudioLDM(pipe, kind="random", note="official sizes, seeded random weights")
    sizes = {"unet": params(unet), "vae": params(vae), "vae_decoder": params(vae.decoder) + params(vae.post_quant_conv),
             "vocoder": params(vocoder), "text_encoder": params(text_encoder)}
    return model, sizes


def build_audioldm_amphion(seed: int):
    """``AmphionAudioLDM`` at the official sizes with seeded random weights."""
    import torch

    from models.audioldm import configs as C
    from models.audioldm.pipeline import AmphionAudioLDM
    from models.audioldm.text_encoder import T5TextEncoder, build_t5_encoder, tiny_tokenizer
    from models.audioldm.unet import AudioLDMUNet
    from models.audioldm.vae import MelVAE
    from models.audioldm.vocoder import TTAVocoder

    exp = C.parse_exp_config(C.OFFICIAL_EXP_CONFIG)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = AudioLDMUNet(exp.unet)
        vae = MelVAE(exp.vae)
        vocoder = TTAVocoder(C.parse_vocoder_config(AMPHION_VOCODER_CONFIG))
        t5 = build_t5_encoder(C.OFFICIAL_T5_REPO_CONFIG)
    vocoder.load_generator(vocoder.generator.state_dict(), "random vocoder")   # folds weight norm, as loading does
    model = AmphionAudioLDM(unet=unet, vae=vae, vocoder=vocoder, text_encoder=T5TextEncoder(t5, tiny_tokenizer()),
                            weights_kind="random", note="official sizes, seeded random weights")
    sizes = {"unet": params(unet), "vae": params(vae),
             "vae_decoder": params(vae.model.decoder) + params(vae.model.post_quant_conv),
             "vocoder": params(vocoder), "text_encoder": params(t5)}
    return model, sizes


def build_picoaudio(seed: int):
    """``PicoAudioPipeline`` at the official sizes with seeded random weights (the modules' own builders)."""
    from models.core.random_init import init_random_weights
    from models.picoaudio import configs as C
    from models.picoaudio.clap import ClapTextEncoder, build_clap_text_model, tiny_tokenizer
    from models.picoaudio.decoder import build_audio_decoder
    from models.picoaudio.diffusion import build_unet
    from models.picoaudio.pipeline import PicoAudioPipeline

    text_model = build_clap_text_model(C.OFFICIAL_CLAP_TEXT_CONFIG)
    init_random_weights(text_model, seed)
    clap = ClapTextEncoder(text_model.eval().requires_grad_(False),
                           tiny_tokenizer(C.TINY_CLAP_TEXT_CONFIG["vocab_size"]))
    unet = build_unet(C.OFFICIAL_UNET_CONFIG, seed=seed + 1)
    decoder = build_audio_decoder(C.parse_vae_config(PICOAUDIO_VAE_CONFIG), C.parse_vocoder(C.OFFICIAL_VOCODER_CONFIG),
                                  seed=seed + 2)
    model = PicoAudioPipeline(clap, unet, decoder, weights_kind="random", note="official sizes, seeded random weights")
    sizes = {"unet": params(unet), "vae": params(decoder.vae),
             "vae_decoder": params(decoder.vae.decoder) + params(decoder.vae.post_quant_conv),
             "vocoder": params(decoder.vocoder), "text_encoder": params(text_model)}
    return model, sizes


def picoaudio_text(event_names, seconds: float) -> str:
    """Two events of the model's list in the structured form, placed inside ``seconds``."""
    a, b = event_names[0], event_names[min(1, len(event_names) - 1)]
    return f"{a}__{0.1 * seconds:.2f}-{0.5 * seconds:.2f}--{b}__{0.5 * seconds:.2f}-{0.9 * seconds:.2f}"


def official_generate(model_name: str, model, steps: int, on_step):
    """One request of the model's own ``generate`` (full clip, default guidance, fixed seed)."""
    if model_name == "audioldm_diffusers":
        return model.generate(AUDIOLDM_PROMPT, audio_length_in_s=10.0, num_inference_steps=steps, seed=SEED,
                              on_step=on_step)
    if model_name == "audioldm_amphion":
        return model.generate(AUDIOLDM_PROMPT, num_inference_steps=steps, seed=SEED, on_step=on_step)
    return model.generate(picoaudio_text(model.events(), 10.0), duration=model.max_seconds,
                          num_inference_steps=steps, seed=SEED, on_step=on_step)


def official_parts(model_name: str, model):
    """(text encoding as a request runs it, decode of a whole clip, facts) for ``model``."""
    import torch

    gen = torch.Generator().manual_seed(0)
    if model_name == "audioldm_diffusers":
        frames = model.mel_frames(10.0)
        latents = torch.randn(1, int(model.unet.config.in_channels), frames // model.vae_scale_factor,
                              model.mel_bins // model.vae_scale_factor, generator=gen)
        samples = model.num_samples(10.0)
        facts = {"audio_s": samples / model.sample_rate, "latent": list(latents.shape), "unet_calls_per_step": 1,
                 "scheduler": "DDIM", "guidance_scale": 2.5, "text_tokens": model.max_text_tokens,
                 "text_passes": 2}

        def text():   # the prompt and the unconditional "" each through CLAP (DiffusersAudioLDM._run)
            return model._embed(AUDIOLDM_PROMPT), model._embed("")

        def decode():
            return model._decode(latents, samples)
        return text, decode, facts
    if model_name == "audioldm_amphion":
        latents = torch.randn(model.latent_shape, generator=gen)
        cond_ids, uncond_ids = model.text_encoder.token_ids(AUDIOLDM_PROMPT, None)
        facts = {"audio_s": model.max_samples / model.sample_rate, "latent": list(latents.shape),
                 "unet_calls_per_step": "steps + 1 in all (PNDM with skip_prk_steps)", "scheduler": "PNDM",
                 "guidance_scale": 4.0, "text_tokens": int(cond_ids.shape[-1]), "text_passes": 2,
                 "text_tokens_note": "tiny character-level tokenizer (T5's SentencePiece would give fewer)"}

        def text():
            return model.text_encoder.embed_pair(cond_ids, uncond_ids)

        def decode():
            return model.vocoder(model.vae.decode(latents)[:, 0])
        return text, decode, facts

    from models.picoaudio.diffusion import LATENT_BINS, LATENT_FRAMES

    latents = torch.randn(1, int(model.unet.config.out_channels), LATENT_FRAMES, LATENT_BINS, generator=gen)
    prompt = picoaudio_text(model.events(), 10.0)
    _, _, events_string = model.parse(prompt, 10.0)
    facts = {"audio_s": model.max_seconds, "latent": list(latents.shape), "unet_calls_per_step": 1,
             "scheduler": "DDPM", "guidance_scale": 3.0, "text_tokens": model.clap.max_length, "text_passes": 1,
             "prompt": prompt}

    def text():   # one CLAP pass (the unconditional token is zeros)
        return model.clap([events_string])

    def decode():
        return model.decoder.decode(latents)
    return text, decode, facts


def rtf_figures(model_name: str, step_s: float, text_s: float, decode_s: float, audio_s: float,
                opts: argparse.Namespace) -> dict:
    """Compute seconds and real-time factor of one request at each step count of the options:
    text encoding + UNet calls x step + decode (PNDM makes steps + 1 UNet calls)."""
    rtf_steps = {"audioldm_diffusers": opts.diffusers_rtf_steps, "audioldm_amphion": opts.amphion_rtf_steps,
                 "picoaudio": opts.picoaudio_rtf_steps}[model_name]
    out = {}
    for n in rtf_steps:
        calls = n + 1 if model_name == "audioldm_amphion" else n
        total = text_s + calls * step_s + decode_s
        out[str(n)] = {"unet_calls": calls, "compute_s": round(total, 2), "rtf": round(total / audio_s, 3)}
    return out


def child_official(model_name: str, opts: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(opts.threads)
    baseline = _status_mib("VmRSS")
    t0 = time.perf_counter()
    builder = {"audioldm_diffusers": build_audioldm_diffusers, "audioldm_amphion": build_audioldm_amphion,
               "picoaudio": build_picoaudio}[model_name]
    model, sizes = builder(seed=0)
    build_s = time.perf_counter() - t0
    rss_built = _status_mib("VmRSS")
    text, decode, facts = official_parts(model_name, model)

    # One generate() whose step callbacks time the steps: the first interval (call start to the
    # first callback) holds the text encoding and the first step, so it is never a sample; then
    # --warmup-steps - 1 more are dropped.
    pndm = model_name == "audioldm_amphion"
    steps = opts.warmup_steps + opts.repeats
    clock = Clock()
    t0 = time.perf_counter()
    audio = official_generate(model_name, model, steps, lambda i, total: clock.mark())
    generate_s = time.perf_counter() - t0
    step = sample_stats(clock.intervals()[opts.warmup_steps - 1:][:opts.repeats], opts.quiet_cores)
    audio = np.asarray(audio)

    with torch.inference_mode():   # as inside generate()
        text_t = sample_stats(timed(text, opts.text_repeats), opts.quiet_cores)
        decode_t = sample_stats(timed(decode, opts.decode_repeats), opts.quiet_cores)
    step_s, text_s, decode_s = step["s"], text_t["s"], decode_t["s"]
    return {
        "params": {**sizes, "total": sum(v for k, v in sizes.items() if k != "vae_decoder")},
        "params_millions": {k: millions(v) for k, v in sizes.items()},
        **facts,
        "torch_threads": torch.get_num_threads(),
        "build_s": round(build_s, 1),
        "step_cfg": step,
        "text_encoding": text_t,
        "decode": decode_t,
        "rtf": rtf_figures(model_name, step_s, text_s, decode_s, float(facts["audio_s"]), opts),
        "contended": [k for k, v in (("step_cfg", step), ("text_encoding", text_t), ("decode", decode_t))
                      if v["contended"]],
        "generate_check": {"steps": steps, "unet_calls": steps + pndm, "wall_s": round(generate_s, 2),
                           "parts_estimate_s": round(text_s + (steps + pndm) * step_s + decode_s, 2),
                           "note": "wall includes the first calls' warm-up", "samples": int(audio.size),
                           "finite": bool(np.isfinite(audio).all())},
        "rss_baseline_mib": baseline,
        "rss_after_build_mib": rss_built,
        "peak_rss_mib": _status_mib("VmHWM"),
    }


def run_child(model_name: str, opts: argparse.Namespace) -> dict:
    argv = [sys.executable, __file__, "--child", model_name, "--threads", str(opts.threads),
            "--repeats", str(opts.repeats), "--warmup-steps", str(opts.warmup_steps),
            "--text-repeats", str(opts.text_repeats), "--decode-repeats", str(opts.decode_repeats),
            "--quiet-cores", str(opts.quiet_cores),
            "--diffusers-rtf-steps", ",".join(map(str, opts.diffusers_rtf_steps)),
            "--amphion-rtf-steps", ",".join(map(str, opts.amphion_rtf_steps)),
            "--picoaudio-rtf-steps", ",".join(map(str, opts.picoaudio_rtf_steps))]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=opts.child_timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"child {model_name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["child_wall_s"] = round(time.perf_counter() - t0, 1)
    return result


def measure_official(name: str, opts: argparse.Namespace) -> dict:
    """The child's figures. A run with a contended measure (step, text or decode) is repeated, up to
    --retries times; each measure is then taken from the run where it was least disturbed (and the
    real-time factors recomputed from those)."""
    runs = []
    for attempt in range(1 + opts.retries):
        quiet = wait_quiet(opts.wait_quiet)
        run = run_child(name, opts)
        run["before"], run["attempt"] = quiet, attempt + 1
        runs.append(run)
        print(f"[official] {name} attempt {attempt + 1}: {short_official(run)}", file=sys.stderr, flush=True)
        if not run["contended"]:
            break
    best = dict(runs[-1])
    for key in MEASURES:
        pick = min(runs, key=lambda r: (r[key]["contended"], -r[key]["quiet_n"] / r[key]["n"], r[key]["s"]))
        best[key] = {**pick[key], "attempt": pick["attempt"]}
    best["contended"] = [key for key in MEASURES if best[key]["contended"]]
    best["rtf"] = rtf_figures(name, best["step_cfg"]["s"], best["text_encoding"]["s"], best["decode"]["s"],
                              float(best["audio_s"]), opts)
    best["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
    best["attempts"] = [{"attempt": r["attempt"], "contended": r["contended"], "before": r["before"],
                         **{f"{key}_s": r[key]["s"] for key in MEASURES}} for r in runs]
    return best


def official_part(opts: argparse.Namespace) -> dict:
    out: dict = {"how": "official architectures, seeded random float32 weights, CPU, one model per child process"}
    for name in opts.models:
        try:
            out[name] = measure_official(name, opts)
        except Exception as exc:   # one model's failure leaves the others' figures
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            print(f"[official] {name}: {out[name]['error'][:300]}", file=sys.stderr, flush=True)
    return out


def short_official(r: dict) -> str:
    return (f"step {r['step_cfg']['s']:.3f} s, text {r['text_encoding']['s']:.3f} s, "
            f"decode {r['decode']['s']:.3f} s, RTF " + ", ".join(f"{k} steps {v['rtf']}" for k, v in r["rtf"].items())
            + (f"; contended: {', '.join(r['contended'])}" if r["contended"] else ""))


# ---------------------------------------------------------------------------------------------
# Part 2: tiny weights, the routes served vs the deployment classes in process
# ---------------------------------------------------------------------------------------------


def route_payloads(opts: argparse.Namespace, pico_text: str) -> dict[str, dict]:
    """What each route hands its deployment (form defaults included; ``subtype``: WAV 16-bit)."""
    return {
        "audioldm": dict(text=AUDIOLDM_PROMPT, model=None, num_inference_steps=opts.steps,
                         audio_length_in_s=opts.route_seconds, guidance_scale=None, negative_prompt=None, seed=SEED,
                         subtype="PCM_16"),
        "picoaudio": dict(text=pico_text, duration=opts.route_seconds, num_inference_steps=opts.steps,
                          guidance_scale=None, seed=SEED, subtype="PCM_16"),
    }


def process_tree_cpu(root: int | None = None) -> dict[int, tuple[str, float]]:
    """pid -> (command line, CPU seconds) of ``root`` (default: this process) and every process
    below it: with a local Ray started from here, the raylet, the GCS, Serve's controller and
    proxy, the ingress and every replica."""
    root = os.getpid() if root is None else root
    parent, ticks = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue   # gone meanwhile
        parent[int(entry)], ticks[int(entry)] = int(fields[1]), int(fields[11]) + int(fields[12])
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            name = " ".join(raw.replace("\0", " ").split())
        except OSError:
            name = "?"
        out[pid] = (name[:80], ticks.get(pid, 0) / CLOCK_TICKS)
        todo.extend(children.get(pid, ()))
    return out


def process_tree_cpu_s() -> float:
    return sum(cpu for _, cpu in process_tree_cpu().values())


def wait_others_quiet(max_wait_s: float, cpu_seconds=process_tree_cpu_s, threshold_cores: float = 0.3) -> dict:
    """``bench_maskgct.wait_quiet`` for a machine where our own processes keep working (a Ray
    application's idle replicas): wait (up to max_wait_s) until the cores busy outside
    ``cpu_seconds()`` have stayed under ``threshold_cores`` for 3 s."""
    t0 = time.perf_counter()
    while True:
        busy0, own0, w0 = _cpu_jiffies()[0], cpu_seconds(), time.perf_counter()
        time.sleep(3)
        wall = time.perf_counter() - w0
        own = (cpu_seconds() - own0) / wall
        other = max(0.0, (_cpu_jiffies()[0] - busy0) / CLOCK_TICKS / wall - own)
        waited = time.perf_counter() - t0
        if other < threshold_cores or waited >= max_wait_s:
            return {"waited_s": round(waited, 1), "other_busy_cores": round(other, 2), "own_cores": round(own, 2),
                    "quiet": other < threshold_cores}


def idle_cpu(seconds: float = 5.0, top: int = 6) -> dict:
    """Cores this process tree uses while no request runs, and its busiest processes."""
    before, t0 = process_tree_cpu(), time.perf_counter()
    time.sleep(seconds)
    after, wall = process_tree_cpu(), time.perf_counter() - t0
    per_name: dict[str, float] = {}
    for pid, (name, cpu) in after.items():
        per_name[name] = per_name.get(name, 0.0) + (cpu - before.get(pid, (name, 0.0))[1]) / wall
    busiest = sorted(per_name.items(), key=lambda kv: -kv[1])[:top]
    return {"cores": round(sum(per_name.values()), 2), "processes": len(after),
            "busiest": {name: round(cores, 3) for name, cores in busiest}}


def latency_stats(samples: list[tuple[float, float]], quiet_cores: float) -> dict:
    """``percentiles`` of every request, and of the requests during which other processes kept at
    most ``quiet_cores`` busy (``quiet``); ``contended`` when fewer than half were."""
    latencies = [t for t, _ in samples]
    calm = [t for t, other in samples if other <= quiet_cores]
    out = {**percentiles(latencies), "min_ms": round(min(latencies) * 1000, 2), "quiet_n": len(calm),
           "contended": len(calm) < max(1, (len(latencies) + 1) // 2),
           "other_busy_cores_median": round(statistics.median(o for _, o in samples), 2),
           "other_busy_cores_max": round(max(o for _, o in samples), 2)}
    if calm:
        out["quiet"] = percentiles(calm)
    return out


async def measure_calls(call, cpu_seconds, opts: argparse.Namespace) -> dict:
    """``call()`` at concurrency 1 through ``bench_common.load`` (--warmup-requests, then --requests),
    each request timed with the cores other processes kept busy meanwhile (machine busy time less
    ``cpu_seconds()``'s, the CPU time of everything doing the work). A contended measurement is
    repeated up to --retries times after waiting for quiet; the least contended is kept."""
    runs = []
    for attempt in range(1 + opts.retries):
        if attempt:
            await asyncio.to_thread(wait_others_quiet, opts.wait_quiet, cpu_seconds, opts.quiet_cores)
        samples: list[tuple[float, float]] = []

        async def timed_call():
            busy0, cpu0 = _cpu_jiffies()[0], cpu_seconds()
            t0 = time.perf_counter()
            await call()
            wall = time.perf_counter() - t0
            busy1, cpu1 = _cpu_jiffies()[0], cpu_seconds()
            samples.append((wall, max(0.0, (busy1 - busy0) / CLOCK_TICKS - (cpu1 - cpu0)) / wall))

        await load(timed_call, 1, opts.requests, warmup=opts.warmup_requests)
        run = latency_stats(samples[opts.warmup_requests:], opts.quiet_cores)
        run["attempt"] = attempt + 1
        runs.append(run)
        if not run["contended"]:
            break
    best = min(runs, key=lambda r: (r["contended"], -r["quiet_n"], r["attempt"]))
    best["attempts"] = len(runs)
    return best


def in_process(opts: argparse.Namespace) -> tuple[dict, dict[str, bytes], str]:
    """The routes' payloads given straight to the deployment classes (tiny weights, no Ray)."""
    import torch

    from deployments.tta import AudioLDMService, PicoAudioService

    torch.set_num_threads(opts.threads)
    t0 = time.perf_counter()
    services = {"audioldm": AudioLDMService(weights="tiny", torch_threads=opts.threads),
                "picoaudio": PicoAudioService(weights="tiny", torch_threads=opts.threads)}
    build_s = time.perf_counter() - t0
    pico_text = picoaudio_text(asyncio.run(services["picoaudio"].events()), opts.route_seconds)
    payloads = route_payloads(opts, pico_text)
    figures, outputs = {}, {}
    for key, service in services.items():
        if service.loaded is None:
            figures[key] = {"error": f"not loaded: {service.unavailable}"}
            continue
        last: dict = {}

        async def call(service=service, payload=payloads[key], last=last):
            last["result"] = await service.generate(dict(payload))

        figures[key] = asyncio.run(measure_calls(call, time.process_time, opts))
        result = last["result"]
        outputs[key] = result["wav"]
        figures[key].update(compute_s_last=round(result["compute_s"], 4), audio_s=result["duration"],
                            weights=result["weights"])
    return {"build_s": round(build_s, 1), "torch_threads": torch.get_num_threads(), **figures}, outputs, pico_text


def served(opts: argparse.Namespace, local_outputs: dict[str, bytes], local_pico_text: str) -> dict:
    """The same payloads as HTTP requests to the whole application on a local Ray (tiny weights)."""
    import httpx
    import numpy as np

    try:
        base, startup_s, start_errors = start_serve_retrying(
            {"weights": "tiny", "dev_mode": False, "torch_threads": opts.threads, **NO_LIMITS},
            before_retry=lambda: wait_quiet(opts.wait_quiet))
        quiet = wait_others_quiet(opts.wait_quiet, threshold_cores=opts.quiet_cores)
        app_idle = idle_cpu()   # what the idle application costs (every replica, Ray, Serve)
        headers = {"X-API-Key": BENCH_KEY}

        async def run() -> dict:
            out: dict = {"startup_s": round(startup_s, 1), "start_errors": start_errors, "before": quiet,
                         "app_idle": app_idle, "torch_threads": opts.threads}
            async with httpx.AsyncClient(timeout=300) as client:
                r = await client.get(base + "/api/tta/picoaudio/events", headers=headers)
                r.raise_for_status()
                pico_text = picoaudio_text(r.json()["events"], opts.route_seconds)
                out["picoaudio_text"] = pico_text
                out["picoaudio_text_same_as_in_process"] = pico_text == local_pico_text
                for key, payload in route_payloads(opts, pico_text).items():
                    form = {k: str(v) for k, v in payload.items() if v is not None and k != "subtype"}
                    url = f"{base}/api/tta/{key}"
                    last: dict = {"model_ms": []}

                    async def call(url=url, form=form, last=last):
                        await post_recording(client, url, last, headers=headers, data=form)

                    figures = await measure_calls(call, process_tree_cpu_s, opts)
                    model_ms = last["model_ms"][-figures["n"]:]
                    audio = wav_samples(last["body"])
                    figures.update(audio_s=len(audio) / 16000, weights=last["weights"],
                                   server_timing_model_p50_ms=percentiles([m / 1000 for m in model_ms])["p50_ms"]
                                   if model_ms else None)
                    if key in local_outputs:
                        local = wav_samples(local_outputs[key])
                        same_len = len(local) == len(audio)
                        figures["same_audio_as_in_process"] = bool(same_len and np.array_equal(local, audio))
                        figures["max_abs_diff_vs_in_process"] = (
                            round(float(np.max(np.abs(local - audio))), 6) if same_len else None)
                    out[key] = figures
            out["app_idle_after"] = idle_cpu()
            return out

        return asyncio.run(run())
    finally:
        try:
            stop_serve()
        except Exception:
            pass


def route_part(opts: argparse.Namespace) -> dict:
    """In process (no Ray), served, in process again: the machine is shared and its speed drifts,
    so the served figures are bracketed by two in-process measurements."""
    out: dict = {"what": f"tiny weights, {opts.route_seconds:g} s of audio, {opts.steps} steps, seed {SEED}, model "
                         f"defaults otherwise (guidance; AudioLDM: the default diffusers model), concurrency 1, "
                         f"{opts.requests} requests after {opts.warmup_requests} warm-ups, WAV 16-bit",
                 "audioldm_text": AUDIOLDM_PROMPT}
    local_outputs: dict[str, bytes] = {}
    pico_text = ""
    for name in ("in_process", "served", "in_process_after"):
        try:
            if name == "served":
                out[name] = served(opts, local_outputs, pico_text)
            else:
                quiet = wait_quiet(opts.wait_quiet)
                out[name], outputs, pico_text = in_process(opts)
                out[name]["before"] = quiet
                local_outputs = local_outputs or outputs
        except Exception as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        print(f"[route] {name} done", file=sys.stderr, flush=True)
    ratios: dict = {}
    for key in ("audioldm", "picoaudio"):
        s = out["served"].get(key, {})
        for name in ("in_process", "in_process_after"):
            i = out[name].get(key, {})
            if "p50_ms" not in s or "p50_ms" not in i:
                continue
            r = {"p50": round(s["p50_ms"] / i["p50_ms"], 3), "p99": round(s["p99_ms"] / i["p99_ms"], 3),
                 "added_p50_ms": round(s["p50_ms"] - i["p50_ms"], 2)}
            if "quiet" in s and "quiet" in i:
                r["quiet_p50"] = round(s["quiet"]["p50_ms"] / i["quiet"]["p50_ms"], 3)
                r["quiet_p99"] = round(s["quiet"]["p99_ms"] / i["quiet"]["p99_ms"], 3)
            ratios.setdefault(key, {})["vs_" + name] = r
    out["served_over_in_process"] = ratios
    return out


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


def summary(result: dict) -> str:
    lines = [f"TTA benchmark on {result['machine']['cpu']} ({result['machine']['cores']} cores), "
             f"torch {result['machine']['torch']}, {result['options']['threads']} torch threads"]
    official = result.get("official")
    if official:
        lines.append("")
        lines.append("Official sizes, seeded random float32 weights (one step = uncond + cond UNet passes + update):")
        for name in MODELS:
            r = official.get(name)
            if r is None:
                continue
            if "error" in r:
                lines.append(f"  {name}: ERROR {r['error'][:400]}")
                continue
            p = r["params_millions"]
            lines.append(f"  {name}: params (M) UNet {p['unet']}, VAE {p['vae']} (decoder {p['vae_decoder']}), "
                         f"vocoder {p['vocoder']}, text encoder {p['text_encoder']}; total "
                         f"{millions(r['params']['total'])} M; peak RSS {r['peak_rss_mib']:.0f} MiB")
            lines.append(f"    latent {r['latent']}, audio {r['audio_s']:.3f} s, {r['scheduler']}, guidance "
                         f"{r['guidance_scale']}, text {r['text_passes']} pass(es) x {r['text_tokens']} tokens")
            def timing(m: dict) -> str:
                how = "contended: median of all" if m["contended"] else f"{m['quiet_n']}/{m['n']} undisturbed"
                return f"{m['s']:.3f} s (min {m['min_s']:.3f}, {how}, run {m.get('attempt', 1)})"
            lines.append(f"    UNet step with CFG: {timing(r['step_cfg'])}")
            lines.append(f"    text encoding: {timing(r['text_encoding'])}; "
                         f"VAE decode + vocoder: {timing(r['decode'])}")
            for steps, v in r["rtf"].items():
                lines.append(f"    RTF at {steps} steps ({v['unet_calls']} UNet calls): {v['rtf']} "
                             f"({v['compute_s']} s of compute for {r['audio_s']:.2f} s)")
            g = r["generate_check"]
            lines.append(f"    check: generate() with {g['unet_calls']} UNet calls took {g['wall_s']} s (first-call "
                         f"warm-up included), the parts add up to {g['parts_estimate_s']} s; audio finite: "
                         f"{g['finite']}; {len(r['attempts'])} run(s)")
    route = result.get("route_tiny")
    if route:
        lines.append("")
        lines.append(f"Routes, {route['what']}:")
        served_ = route.get("served", {})
        if "app_idle" in served_:
            busiest = ", ".join(f"{n[:48]} {c}" for n, c in list(served_["app_idle"]["busiest"].items())[:3])
            lines.append(f"  the idle application ({served_['app_idle']['processes']} processes: replicas, Ray, "
                         f"Serve) used {served_['app_idle']['cores']} cores before the requests, "
                         f"{served_.get('app_idle_after', {}).get('cores')} after (busiest: {busiest}); "
                         f"startup {served_['startup_s']} s")
        for key in ("audioldm", "picoaudio"):
            s = served_.get(key)

            def fig(x):
                if not x:
                    return "not measured"
                if "error" in x:
                    return f"ERROR {x['error'][:200]}"
                quiet = (f"; {x['quiet_n']} undisturbed: p50 {x['quiet']['p50_ms']:.1f}, p99 {x['quiet']['p99_ms']:.1f}"
                         if "quiet" in x else "")
                return (f"p50 {x['p50_ms']:.1f} ms, p99 {x['p99_ms']:.1f} ms (n={x['n']}{quiet}; other processes' "
                        f"busy cores median {x['other_busy_cores_median']}; run {x['attempt']} of {x['attempts']})")
            lines.append(f"  /api/tta/{key}:")
            lines.append(f"    in process        {fig(route.get('in_process', {}).get(key))}")
            lines.append(f"    served            {fig(s)}")
            lines.append(f"    in process again  {fig(route.get('in_process_after', {}).get(key))}")
            for name, r in route.get("served_over_in_process", {}).get(key, {}).items():
                quiet = (f"; undisturbed requests only: p50 x{r['quiet_p50']}, p99 x{r['quiet_p99']}"
                         if "quiet_p50" in r else "")
                lines.append(f"    served / {name.removeprefix('vs_').replace('_', ' ')}: p50 x{r['p50']}, "
                             f"p99 x{r['p99']} ({r['added_p50_ms']:+} ms at p50){quiet}")
            if s and "same_audio_as_in_process" in s:
                lines.append(f"    served audio identical to in-process (same seed): {s['same_audio_as_in_process']}")
        for name in ("in_process", "served", "in_process_after"):
            if "error" in route.get(name, {}):
                lines.append(f"  {name}: ERROR {route[name]['error'][:400]}")
    lines.append(f"\nTotal wall time {result.get('total_wall_s')} s")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Text-to-audio cost: official sizes with random weights (per-step time, decode, RTF, "
                    "parameters, peak RSS) and the tiny-weight routes served vs in process.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_two_part_arguments(parser)
    parser.add_argument("--models", type=lambda s: [m for m in s.split(",") if m], default=list(MODELS),
                        help=f"official-size models to measure, comma-separated, of {','.join(MODELS)}")
    parser.add_argument("--repeats", type=int, default=5, help="timed denoising steps per official model")
    parser.add_argument("--warmup-steps", type=int, default=1,
                        help="untimed steps before them (at least 1: the first includes the text encoding)")
    parser.add_argument("--text-repeats", type=int, default=5, help="timed text encodings per official model")
    parser.add_argument("--decode-repeats", type=int, default=3, help="timed decodes (VAE + vocoder) per model")
    parser.add_argument("--diffusers-rtf-steps", type=int_list, default=[50],
                        help="step counts of the diffusers AudioLDM real-time factor")
    parser.add_argument("--amphion-rtf-steps", type=int_list, default=[50, 200],
                        help="step counts of the Amphion AudioLDM real-time factor")
    parser.add_argument("--picoaudio-rtf-steps", type=int_list, default=[200],
                        help="step counts of the PicoAudio real-time factor")
    parser.add_argument("--steps", type=int, default=10, help="num_inference_steps of the route requests")
    parser.add_argument("--route-seconds", type=float, default=2.0, help="audio length of the route requests")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per route and per path")
    parser.add_argument("--warmup-requests", type=int, default=3, help="untimed requests before them")
    parser.add_argument("--wait-quiet", type=float, default=30,
                        help="before each part, wait up to this many seconds for other processes to go quiet")
    parser.add_argument("--quiet-cores", type=float, default=0.3,
                        help="a timing sample counts as undisturbed when other processes kept at most this many "
                             "cores busy; figures are the median of those when at least half the samples are")
    parser.add_argument("--retries", type=int, default=2,
                        help="repeats of a contended measurement: an official-size child (each measure is then "
                             "taken from its least disturbed run) or a route's requests (the least disturbed "
                             "run is kept)")
    parser.add_argument("--child-timeout", type=float, default=1200, help="seconds per official-size child")
    parser.add_argument("--name", default="tta", help="results file: bench_results/<name>.json")
    parser.add_argument("--child", choices=MODELS, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    unknown = sorted(set(opts.models) - set(MODELS))
    if unknown:
        parser.error(f"unknown --models {unknown}; choose from {', '.join(MODELS)}")
    if min(opts.repeats, opts.threads, opts.requests, opts.warmup_steps, opts.text_repeats,
           opts.decode_repeats, opts.steps) < 1:
        parser.error("--repeats, --warmup-steps, --text-repeats, --decode-repeats, --threads, --requests and "
                     "--steps must be at least 1")
    return opts


def main() -> None:
    run_two_part_benchmark(parse_args(), child=child_official, official_part=official_part, route_part=route_part,
                           summary=summary)


if __name__ == "__main__":
    main()

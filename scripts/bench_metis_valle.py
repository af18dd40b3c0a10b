"""Metis and DualCodec-VALL-E cost on this CPU, measured in one run (each part can be skipped):

  official   the models at their official sizes with seeded random float32 weights (nothing can be
             downloaded here), each in its own child process, one at a time:
               valle_ar    DualCodec-VALL-E's AR (``llama_250M``: hidden 1024, 12 layers, one vocabulary of
                           68260 ids) decoding with its KV cache (``ValleAR.continue_ids``, the reference's
                           sampling: top-k 15, top-p 0.85, repetition penalty 1.1, speech ids only) after a
                           prompt of --text-tokens text ids, SEP and --prompt-seconds of 12.5 Hz codes;
                           --tokens new tokens per run, one short warm-up run, then --repeats runs: prefill
                           seconds (the prompt's forward and the first draw), ms per token and tokens/s of
                           the cached decode (the seconds between consecutive per-token callbacks). For
                           comparison, the same draws without a cache (every token a forward over the whole
                           sequence), run once when one forward says it fits in --no-cache-limit seconds.
               valle_nar   the NAR (hidden 1024, 12 layers): one full pass, the 7 acoustic layers one after
                           the other, for --prompt-seconds of prompt and --target-seconds of target codes.
               metis_vc    Metis' stage 1 for VC (MaskGCT's T2S sizes, hidden 1536, 16 layers, plus the gated
                           condition adapter from 1024-d w2v-bert features; the LoRA releases are merged
                           into the same shapes, so no LoRA layers run): one masked-generative decoding step
                           for a 3 s prompt + 5 s target (150 + 250 semantic frames, ``finetune_cond``
                           (1, 400, 1024)), timed between consecutive step callbacks of ``MetisStage1.generate``
                           (1 + --repeats steps, the first, which also runs the adapter, dropped), with cfg 1.0
                           (the VC recipe: a conditional pass over 400 frames and an unconditional one over
                           250) and with cfg 0 (the SE / TSE recipes: the conditional pass only).
  served     tiny weights: ``POST /api/tts/metis`` (reference_audio + reference_text, language en),
             ``/api/vc/metis``, ``/api/se/metis`` and ``/api/tts/dualcodec-valle`` with the whole application
             on a local Ray (``bench_common.start_serve``: the builder binds every family, so the whole
             application starts), against the same inputs given in process
               pipeline    the models' own pipelines: ``MetisPipeline.from_weights("tiny")`` (``.tts`` /
                           ``.vc`` / ``.se``); VALL-E has none that also runs its codec (``ValleTTS`` works on
                           DualCodec codes), so for it this column is empty
               services    the deployment classes without Ray (``MetisService`` over MaskGCT's and Metis'
                           part services, ``ValleService`` over ``DualCodecService``, through local handles,
                           as tests/test_metis_service.py and tests/test_valle_service.py build them): the
                           same code the replicas run, WAV encoding included, minus Ray and HTTP
             Median of --repeats requests after one warm-up each, at concurrency 1; the ratios served /
             in process; whether the served audio equals the services' (same seed, 16-bit WAV both).

The machine may be shared: each part first waits (up to --wait-quiet s) for the CPUs to go idle, and
every sample records how many cores other processes kept busy meanwhile (a busy neighbour on one of
two cores makes torch's kernels several times slower); figures are the medians of the undisturbed
samples when at least half of them are, else of all of them (``contended``); a contended official
child is rerun up to --retries times and its least contended run kept.

The served part starts Ray: only one Ray cluster may run on a shared machine, so run it under the
machine's Ray lock, e.g.

    OMP_NUM_THREADS=2 flock /tmp/ray.lock .venv/bin/python scripts/bench_metis_valle.py          # everything (~7 min)
    .venv/bin/python scripts/bench_metis_valle.py --skip-served                                  # official sizes only
    OMP_NUM_THREADS=2 flock /tmp/ray.lock .venv/bin/python scripts/bench_metis_valle.py --skip-official

The JSON that goes to bench_results/<--name>.json (default metis_valle) is printed, then a readable summary.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import statistics
import sys
import time

from bench_common import (
    BENCH_KEY, NO_LIMITS, SHARED_DATA, ChildBench, add_two_part_arguments, post_recording,
    run_two_part_benchmark, speech_like_wav, start_serve_retrying, stop_serve, wav_samples,
)
from bench_maskgct import wait_quiet
from bench_tta import (
    Clock,
    idle_cpu,
    measure_calls,
    millions,
    params,
    process_tree_cpu_s,
    sample_stats,
    wait_others_quiet,
)

OFFICIAL = ("valle_ar", "valle_nar", "metis_vc")
ROUTES = {"metis_tts": "/api/tts/metis", "metis_vc": "/api/vc/metis", "metis_se": "/api/se/metis",
          "valle": "/api/tts/dualcodec-valle"}
SEED = 1234
SR = 24000
VALLE_FRAME_RATE = 12.5     # DualCodec 12hz_v1 frames per second
METIS_FRAME_RATE = 50       # semantic frames per second
TTS_TEXT = "The quick brown fox jumps over the lazy dog near the quiet river bank."
REFERENCE_TEXT = "This is a short reference sentence for the voice."


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# ---------------------------------------------------------------------------------------------
# Part 1: official sizes, random weights (one child process per model)
# ---------------------------------------------------------------------------------------------


def valle_prompt(opts: argparse.Namespace):
    """Random Whisper text ids and 12.5 Hz semantic codes of the prompt (seeded)."""
    import torch

    gen = torch.Generator().manual_seed(SEED)
    frames = math.ceil(opts.prompt_seconds * VALLE_FRAME_RATE)
    text = torch.randint(0, 50000, (1, opts.text_tokens), generator=gen)
    codes = torch.randint(0, 16384, (1, frames), generator=gen)
    return text, codes


def no_cache_decode(model, ids, sampling, n_tokens: int, generator, on_token) -> list[int]:
    """``continue_ids``' draws without the KV cache: every token a forward over the whole sequence."""
    import torch

    from models.valle.ar import valle_scores
    from models.vevo.ar_transformer import inverse_cdf_sample

    context = ids.clone()
    new: list[int] = []
    for _ in range(n_tokens):
        logits = model.llm(context, last_only=True)[:, -1]
        probs = valle_scores(logits, context, sampling, model.vocab).softmax(dim=-1)
        token = inverse_cdf_sample(probs, torch.rand((1,), generator=generator))
        new.append(int(token))
        on_token()
        if int(token) == model.config.eos_token_id:
            break
        context = torch.cat([context, token[:, None]], dim=1)
    return new


def child_valle_ar(opts: argparse.Namespace) -> dict:
    import torch

    from models.valle.ar import ARSampling, build_valle_ar
    from models.valle.configs import OFFICIAL_AR_CONFIG

    t0 = time.perf_counter()
    model = build_valle_ar(OFFICIAL_AR_CONFIG, seed=0)
    build_s = time.perf_counter() - t0
    text, codes = valle_prompt(opts)
    ids = model.layout(text, codes)
    length = ids.shape[1]
    sampling = ARSampling(max_length=length + opts.tokens, speech_only=True)

    def run(sampling) -> tuple[Clock, list[int]]:
        clock = Clock()
        clock.mark()
        out = model.continue_ids(ids, sampling, generator=torch.Generator().manual_seed(SEED),
                                 on_progress=lambda done, limit: clock.mark())
        return clock, out[0].tolist()

    run(ARSampling(max_length=length + min(opts.tokens, 5), speech_only=True))   # warm-up
    prefill, decode, per_token, generated = [], [], [], []
    tokens: list[int] = []
    for _ in range(opts.repeats):
        clock, tokens = run(sampling)
        iv = clock.intervals()
        prefill.append(iv[0])
        steps = iv[1:]
        per_token.extend(steps)
        generated.append(len(tokens))
        if steps:
            wall = sum(t for t, _ in steps)
            decode.append((wall / len(steps), sum(t * o for t, o in steps) / wall))
    if not decode:
        raise RuntimeError(f"the AR stopped after {generated} token(s): nothing to time")
    result = {
        "params": params(model), "params_millions": millions(params(model)), "build_s": round(build_s, 1),
        "prompt": {"text_tokens": int(text.shape[1]), "code_frames": int(codes.shape[1]), "layout_tokens": length},
        "tokens_asked": opts.tokens, "tokens_generated": generated,
        "prefill": sample_stats(prefill, opts.quiet_cores),
        "decode_per_token": sample_stats(decode, opts.quiet_cores),
        "decode_per_token_all_tokens": sample_stats(per_token, opts.quiet_cores),
    }
    per_token_s = result["decode_per_token"]["s"]
    result["ms_per_token"] = ms(per_token_s)
    result["tokens_per_s"] = round(1 / per_token_s, 2)
    # end to end: prefill + (n - 1) cached steps for n tokens
    n = opts.tokens
    result["end_to_end_tokens_per_s"] = round(n / (result["prefill"]["s"] + (n - 1) * per_token_s), 2)

    # Without the KV cache: one forward at the average length says what the whole run would cost.
    with torch.inference_mode():
        probe = torch.cat([ids, ids.new_full((1, n // 2), OFFICIAL_AR_CONFIG.initial_offset)], dim=1)
        model.llm(probe, last_only=True)
        t0 = time.perf_counter()
        model.llm(probe, last_only=True)
        forward_s = time.perf_counter() - t0
    estimate = n * forward_s
    no_cache: dict = {"forward_at_average_length_s": round(forward_s, 3), "estimate_s": round(estimate, 1),
                      "limit_s": opts.no_cache_limit}
    if estimate <= opts.no_cache_limit:
        clock = Clock()
        clock.mark()
        with torch.inference_mode():
            new = no_cache_decode(model, ids, sampling, n, torch.Generator().manual_seed(SEED), clock.mark)
        iv = clock.intervals()
        wall = sum(t for t, _ in iv)
        no_cache.update(ran=True, tokens=len(new), wall_s=round(wall, 2), ms_per_token=ms(wall / len(new)),
                        tokens_per_s=round(len(new) / wall, 2),
                        other_busy_cores=round(sum(t * o for t, o in iv) / wall, 2),
                        same_tokens_as_cached=new == tokens)
    else:
        no_cache["ran"] = False
    result["no_cache"] = no_cache
    return result


def child_valle_nar(opts: argparse.Namespace) -> dict:
    import torch

    from models.valle.configs import OFFICIAL_NAR_CONFIG
    from models.valle.nar import build_valle_nar

    t0 = time.perf_counter()
    model = build_valle_nar(OFFICIAL_NAR_CONFIG, seed=1)
    build_s = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(SEED)
    prompt_frames = math.ceil(opts.prompt_seconds * VALLE_FRAME_RATE)
    target_frames = math.ceil(opts.target_seconds * VALLE_FRAME_RATE)
    prompt = torch.cat([torch.randint(0, 16384, (1, 1, prompt_frames), generator=gen),
                        torch.randint(0, 4096, (7, 1, prompt_frames), generator=gen)])
    target = torch.randint(0, 16384, (1, target_frames), generator=gen)
    passes, layers = [], []
    for i in range(1 + opts.repeats):
        clock = Clock()
        clock.mark()
        model.generate(prompt, target, on_progress=lambda layer, total: clock.mark())
        iv = clock.intervals()
        if i:   # the first pass is the warm-up
            wall = sum(t for t, _ in iv)
            passes.append((wall, sum(t * o for t, o in iv) / wall))
            layers.extend(iv)
    return {"params": params(model), "params_millions": millions(params(model)), "build_s": round(build_s, 1),
            "prompt_frames": prompt_frames, "target_frames": target_frames,
            "sequence": 1 + prompt_frames + target_frames,
            "pass": sample_stats(passes, opts.quiet_cores), "layer": sample_stats(layers, opts.quiet_cores)}


def child_metis_vc(opts: argparse.Namespace) -> dict:
    import torch

    from models.metis.configs import official_stage1_config
    from models.metis.stage1 import build_stage1
    from models.metis.tasks import STAGE1_SETTINGS

    config = official_stage1_config("vc")
    t0 = time.perf_counter()
    model = build_stage1(config, "vc", seed=0)
    build_s = time.perf_counter() - t0
    gen = torch.Generator().manual_seed(SEED)
    prompt_frames, target_frames = 3 * METIS_FRAME_RATE, 5 * METIS_FRAME_RATE
    prompt = torch.randint(0, config.cond_codebook_size, (1, prompt_frames), generator=gen)
    cond = torch.randn(1, prompt_frames + target_frames, config.cond_dim, generator=gen)
    vc = STAGE1_SETTINGS["vc"]
    out = {"params": params(model), "params_millions": millions(params(model)),
           "adapter_params_millions": millions(params(model.cond_adapter)), "build_s": round(build_s, 1),
           "config": {"hidden_size": config.hidden_size, "num_layers": config.num_layers,
                      "num_heads": config.num_heads, "cond_codebook_size": config.cond_codebook_size,
                      "cond_dim": config.cond_dim},
           "prompt_frames": prompt_frames, "target_frames": target_frames}
    for name, cfg in (("step_cfg1", vc.cfg), ("step_cfg0", 0.0)):
        clock = Clock()
        clock.mark()
        t0 = time.perf_counter()
        model.generate(prompt, None, target_frames, finetune_cond=cond, n_timesteps=1 + opts.repeats, cfg=cfg,
                       rescale_cfg=vc.rescale_cfg, temp=vc.temp, filter_thres=vc.filter_thres, seed=SEED,
                       on_step=lambda step, total: clock.mark())
        wall = time.perf_counter() - t0
        iv = clock.intervals()
        out[name] = {**sample_stats(iv[1:], opts.quiet_cores), "cfg": cfg, "first_interval_s": round(iv[0][0], 3),
                     "generate_wall_s": round(wall, 2), "steps_run": len(iv)}
    out["recipes"] = {task: {"n_timesteps": s.n_timesteps, "cfg": s.cfg} for task, s in STAGE1_SETTINGS.items()
                      if task != "tts"}
    out["vc_stage1_s"] = round(vc.n_timesteps * out["step_cfg1"]["s"], 1)
    out["tse_stage1_s"] = round(STAGE1_SETTINGS["tse"].n_timesteps * out["step_cfg0"]["s"], 1)
    return out


CHILDREN = {"valle_ar": child_valle_ar, "valle_nar": child_valle_nar, "metis_vc": child_metis_vc}
# The figures whose contention decides whether a child is rerun.
KEY_MEASURES = {"valle_ar": ("decode_per_token", "prefill"), "valle_nar": ("pass",),
                "metis_vc": ("step_cfg1", "step_cfg0")}


BENCH = ChildBench(__file__, CHILDREN, KEY_MEASURES,
                   forwarded=("threads", "repeats", "tokens", "text_tokens", "prompt_seconds", "target_seconds",
                              "no_cache_limit", "quiet_cores"))


def official_part(opts: argparse.Namespace) -> dict:
    return BENCH.measure(OFFICIAL, opts, lambda: wait_quiet(opts.wait_quiet),
                         "official architectures, seeded random float32 weights, CPU, one model per child process")


# ---------------------------------------------------------------------------------------------
# Part 2: tiny weights, the routes served vs in process
# ---------------------------------------------------------------------------------------------


def route_inputs() -> dict:
    """The uploads (24 kHz 16-bit WAV) and the same clips as float32 arrays, as the ingress decodes them."""
    reference, source = speech_like_wav(3.0), speech_like_wav(2.5)
    return {"reference_wav": reference, "source_wav": source,
            "reference": wav_samples(reference, SR), "source": wav_samples(source, SR)}


def ns_for_calls(opts: argparse.Namespace) -> argparse.Namespace:
    """The options ``bench_tta.measure_calls`` reads."""
    return argparse.Namespace(requests=opts.repeats, warmup_requests=1, retries=opts.retries,
                              wait_quiet=opts.wait_quiet, quiet_cores=opts.quiet_cores)


def in_process_pipelines(opts: argparse.Namespace, inputs: dict) -> tuple[dict, dict]:
    """Metis' own pipeline (tiny weights), the inputs the routes get."""
    import torch

    from models.metis.pipeline import MetisPipeline

    torch.set_num_threads(opts.threads)
    t0 = time.perf_counter()
    pipe = MetisPipeline.from_weights("tiny", tasks=("tts", "vc", "se"), g2p_data=SHARED_DATA["AMPHION_G2P_DATA"])
    build_s = time.perf_counter() - t0
    ref, src = inputs["reference"], inputs["source"]
    jobs = {
        "metis_tts": lambda: pipe.tts(TTS_TEXT, ref, REFERENCE_TEXT, language="en", seed=SEED),
        "metis_vc": lambda: pipe.vc(src, ref, seed=SEED),
        "metis_se": lambda: pipe.se(src, seed=SEED),
    }
    figures: dict = {"build_s": round(build_s, 1), "what": "MetisPipeline.from_weights('tiny') .tts/.vc/.se",
                     "valle": {"note": "no in-process pipeline that also runs DualCodec (see services)"}}
    outputs = {}
    for key, job in jobs.items():
        last: dict = {}

        async def call(job=job, last=last):
            last["audio"] = job()

        try:
            figures[key] = asyncio.run(measure_calls(call, time.process_time, ns_for_calls(opts)))
            outputs[key] = last["audio"]
            figures[key]["audio_s"] = round(len(last["audio"]) / SR, 3)
        except Exception as exc:
            figures[key] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
        print(f"[route] pipeline {key} done", file=sys.stderr, flush=True)
    del pipe
    gc.collect()
    return figures, outputs


def in_process_services(opts: argparse.Namespace, inputs: dict) -> tuple[dict, dict]:
    """The deployment classes of the Metis and VALL-E entries and their parts (tiny), no Ray."""
    from deployments.codec import DualCodecService
    from deployments.maskgct import (
        MaskGCTAcousticCodecService, MaskGCTS2AService, MaskGCTT2SService, W2VBertSemanticService,
    )
    from deployments.metis import PARTS as METIS_PARTS
    from deployments.metis import MetisService, MetisStage1Service
    from deployments.topology import LocalHandle
    from deployments.valle import ValleService

    loading = dict(weights="tiny", torch_threads=opts.threads)
    t0 = time.perf_counter()
    semantic = W2VBertSemanticService(**loading)
    parts = {"W2VBertSemantic": semantic, "MaskGCTAcousticCodec": MaskGCTAcousticCodecService(**loading),
             "MaskGCTT2S": MaskGCTT2SService(**loading), "MaskGCTS2A": MaskGCTS2AService(**loading)}
    for part in METIS_PARTS:
        parts[part.name] = MetisStage1Service(**part.bind_args, **loading)
    metis = MetisService({name: LocalHandle(s) for name, s in parts.items()}, **loading)
    codec = DualCodecService({"W2VBertSemantic": LocalHandle(semantic)}, **loading)
    valle = ValleService({"DualCodec": LocalHandle(codec)}, **loading)
    build_s = time.perf_counter() - t0
    ref, src = inputs["reference"], inputs["source"]
    wav = {"subtype": "PCM_16"}
    calls = {
        "metis_tts": lambda: metis.tts({"text": TTS_TEXT, "reference": ref, "reference_text": REFERENCE_TEXT,
                                        "language": "en", "target_len": None, "n_timesteps": 25, "cfg": 2.5,
                                        "seed": SEED, **wav}),
        "metis_vc": lambda: metis.vc({"source": src, "reference": ref, "seed": SEED, **wav}),
        "metis_se": lambda: metis.se({"audio": src, "seed": SEED, **wav}),
        "valle": lambda: valle.synthesize({"text": TTS_TEXT, "reference": ref, "reference_text": REFERENCE_TEXT,
                                           "temperature": 1.0, "top_k": 15, "top_p": 0.85,
                                           "repetition_penalty": 1.1, "seed": SEED, **wav}),
    }
    figures: dict = {"build_s": round(build_s, 1), "what": "deployment classes, local handles, no Ray"}
    outputs = {}
    for key, make in calls.items():
        last: dict = {}

        async def call(make=make, last=last):
            last["result"] = await make()

        try:
            figures[key] = asyncio.run(measure_calls(call, time.process_time, ns_for_calls(opts)))
            outputs[key] = last["result"]["wav"]
            figures[key].update(audio_s=round(last["result"]["duration"], 3), weights=last["result"]["weights"])
        except Exception as exc:
            figures[key] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
        print(f"[route] services {key} done", file=sys.stderr, flush=True)
    del metis, valle, codec, parts, semantic
    gc.collect()
    return figures, outputs


def route_requests(inputs: dict) -> dict[str, tuple[dict, dict]]:
    """(form fields, uploads) of each route."""
    ref = ("reference.wav", inputs["reference_wav"], "audio/wav")
    src = ("source.wav", inputs["source_wav"], "audio/wav")
    return {
        "metis_tts": ({"text": TTS_TEXT, "reference_text": REFERENCE_TEXT, "language": "en", "seed": str(SEED)},
                      {"reference_audio": ref}),
        "metis_vc": ({"seed": str(SEED)}, {"source_audio": src, "reference_audio": ref}),
        "metis_se": ({"seed": str(SEED)}, {"audio": src}),
        "valle": ({"text": TTS_TEXT, "reference_text": REFERENCE_TEXT, "seed": str(SEED)}, {"reference_audio": ref}),
    }


def served(opts: argparse.Namespace, inputs: dict, service_outputs: dict) -> dict:
    """The same inputs as HTTP requests to the whole application on a local Ray (tiny weights)."""
    import httpx
    import numpy as np

    try:
        base, startup_s, start_errors = start_serve_retrying(
            {"weights": "tiny", "dev_mode": False, "torch_threads": opts.threads, **NO_LIMITS})
        quiet = wait_others_quiet(opts.wait_quiet, threshold_cores=opts.quiet_cores)
        app_idle = idle_cpu()
        headers = {"X-API-Key": BENCH_KEY}

        async def run() -> dict:
            out: dict = {"startup_s": round(startup_s, 1), "start_errors": start_errors, "before": quiet,
                         "app_idle": app_idle, "what": "whole application on a local Ray, HTTP via httpx"}
            async with httpx.AsyncClient(timeout=300) as client:
                for key, (form, files) in route_requests(inputs).items():
                    url = base + ROUTES[key]
                    last: dict = {"model_ms": []}

                    async def call(url=url, form=form, files=files, last=last):
                        await post_recording(client, url, last, headers=headers, data=form, files=files)

                    try:
                        figures = await measure_calls(call, process_tree_cpu_s, ns_for_calls(opts))
                    except Exception as exc:
                        out[key] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
                        continue
                    audio = wav_samples(last["body"], SR)
                    model_ms = last["model_ms"][-figures["n"]:]
                    figures.update(audio_s=round(len(audio) / SR, 3), weights=last["weights"],
                                   server_timing_model_median_ms=round(statistics.median(model_ms), 2)
                                   if model_ms else None)
                    if key in service_outputs:
                        local = wav_samples(service_outputs[key], SR)
                        figures["same_audio_as_services"] = bool(local.shape == audio.shape
                                                                 and np.array_equal(local, audio))
                    out[key] = figures
                    print(f"[route] served {key} done", file=sys.stderr, flush=True)
            return out

        return asyncio.run(run())
    finally:
        try:
            stop_serve()
        except Exception:
            pass


def route_part(opts: argparse.Namespace) -> dict:
    missing = [str(f) for f in SHARED_DATA.values() if not f.is_dir()]
    inputs = route_inputs()
    out: dict = {"what": f"tiny weights, 3 s reference, 2.5 s source / noisy clip, text {TTS_TEXT!r}, seed {SEED}, "
                         f"route defaults otherwise, concurrency 1, median of {opts.repeats} requests after 1 "
                         f"warm-up, WAV 16-bit", "missing_shared_data": missing}
    service_outputs: dict = {}
    for name in ("pipeline", "services", "served"):
        wait_quiet(opts.wait_quiet)
        try:
            if name == "pipeline":
                out[name], _ = in_process_pipelines(opts, inputs)
            elif name == "services":
                out[name], service_outputs = in_process_services(opts, inputs)
            else:
                out[name] = served(opts, inputs, service_outputs)
        except Exception as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            print(f"[route] {name}: {out[name]['error'][:300]}", file=sys.stderr, flush=True)
    ratios: dict = {}
    for key in ROUTES:
        s = out["served"].get(key, {})
        for name in ("pipeline", "services"):
            i = out[name].get(key, {})
            if "p50_ms" in s and "p50_ms" in i:
                ratios.setdefault(key, {})[name] = {"ratio": round(s["p50_ms"] / i["p50_ms"], 3),
                                                    "added_ms": round(s["p50_ms"] - i["p50_ms"], 1)}
    out["served_over_in_process"] = ratios
    return out


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


def how(m: dict) -> str:
    return "contended: median of all" if m["contended"] else f"{m['quiet_n']}/{m['n']} undisturbed"


def summary(result: dict) -> str:
    o = result["options"]
    lines = [f"Metis / DualCodec-VALL-E benchmark on {result['machine']['cpu']} ({result['machine']['cores']} cores), "
             f"torch {result['machine']['torch']}, {o['threads']} torch threads"]
    official = result.get("official")
    if official:
        lines += ["", "Official sizes, seeded random float32 weights, one child process each:"]
        r = official.get("valle_ar", {})
        if "error" in r:
            lines.append(f"  VALL-E AR: ERROR {r['error'][:400]}")
        elif r:
            p, d = r["prompt"], r["decode_per_token"]
            lines.append(f"  VALL-E AR: {r['params_millions']} M params, peak RSS {r['peak_rss_mib']:.0f} MiB; prompt "
                         f"{p['text_tokens']} text ids + SEP + {p['code_frames']} codes = {p['layout_tokens']} tokens; "
                         f"{r['tokens_asked']} new tokens per run (generated {r['tokens_generated']})")
            lines.append(f"    KV cache: {r['ms_per_token']:.1f} ms/token = {r['tokens_per_s']} tokens/s "
                         f"(median of {d['n']} runs, {how(d)}; all tokens' median "
                         f"{ms(r['decode_per_token_all_tokens']['s']):.1f} ms); prefill {ms(r['prefill']['s']):.0f} ms; "
                         f"end to end {r['end_to_end_tokens_per_s']} tokens/s for {r['tokens_asked']} tokens")
            nc = r["no_cache"]
            if nc.get("ran"):
                lines.append(f"    no cache (comparison, one run): {nc['ms_per_token']:.1f} ms/token = {nc['tokens_per_s']} "
                             f"tokens/s over {nc['tokens']} tokens ({nc['wall_s']} s, other processes' busy cores "
                             f"{nc['other_busy_cores']}); same tokens as cached: {nc['same_tokens_as_cached']}")
            else:
                lines.append(f"    no cache: skipped (one forward at the average length took "
                             f"{nc['forward_at_average_length_s']} s: ~{nc['estimate_s']} s > {nc['limit_s']} s)")
        r = official.get("valle_nar", {})
        if "error" in r:
            lines.append(f"  VALL-E NAR: ERROR {r['error'][:400]}")
        elif r:
            lines.append(f"  VALL-E NAR: {r['params_millions']} M params, peak RSS {r['peak_rss_mib']:.0f} MiB; "
                         f"{r['prompt_frames']} prompt + {r['target_frames']} target frames ({r['sequence']} positions)")
            lines.append(f"    one full pass (7 layers): {r['pass']['s']:.3f} s (min {r['pass']['min_s']:.3f}, "
                         f"{how(r['pass'])}); per layer {r['layer']['s']:.3f} s")
        r = official.get("metis_vc", {})
        if "error" in r:
            lines.append(f"  Metis stage 1 (VC): ERROR {r['error'][:400]}")
        elif r:
            c = r["config"]
            lines.append(f"  Metis stage 1 (VC, hidden {c['hidden_size']}, {c['num_layers']} layers, adapter "
                         f"{r['adapter_params_millions']} M): {r['params_millions']} M params, peak RSS "
                         f"{r['peak_rss_mib']:.0f} MiB; {r['prompt_frames']} prompt + {r['target_frames']} target frames")
            for name, label in (("step_cfg1", "cfg 1.0 (VC recipe: cond 400 + uncond 250 frames)"),
                                ("step_cfg0", "cfg 0 (SE / TSE recipes: cond pass only)")):
                m = r[name]
                lines.append(f"    one step, {label}: {m['s']:.3f} s (min {m['min_s']:.3f}, {how(m)}; "
                             f"first interval with the adapter {m['first_interval_s']:.3f} s)")
            lines.append(f"    stage 1 at the recipes' steps: VC 20 x cfg 1.0 = {r['vc_stage1_s']} s, TSE 10 x cfg 0 = "
                         f"{r['tse_stage1_s']} s for 5 s of target (SE runs 10 x cfg 0 on the 250 target frames only)")
        for name in OFFICIAL:
            x = official.get(name, {})
            if x.get("attempts", 1) > 1 or x.get("contended"):
                lines.append(f"  ({name}: {x.get('attempts')} run(s), kept run {x.get('attempt')}; contended: "
                             f"{x.get('contended') or 'no'})")
    route = result.get("route_tiny")
    if route:
        lines += ["", f"Routes, {route['what']}:"]
        if route.get("missing_shared_data"):
            lines.append(f"  missing shared data: {route['missing_shared_data']}")
        s_all = route.get("served", {})
        if "startup_s" in s_all:
            lines.append(f"  application startup {s_all['startup_s']} s; the idle application used "
                         f"{s_all['app_idle']['cores']} cores ({s_all['app_idle']['processes']} processes)")
        lines.append(f"  {'route':28} {'pipeline ms':>12} {'services ms':>12} {'served ms':>10} "
                     f"{'served/pipeline':>16} {'served/services':>16}")

        def fig(d: dict) -> str:
            if "p50_ms" in d:
                return f"{d['p50_ms']:.0f}" + ("*" if d.get("contended") else "")
            return "ERROR" if "error" in d else "n/a"
        for key, path in ROUTES.items():
            p, s, v = (route.get(n, {}).get(key, {}) for n in ("pipeline", "services", "served"))
            ratio = route.get("served_over_in_process", {}).get(key, {})
            rp = f"x{ratio['pipeline']['ratio']} ({ratio['pipeline']['added_ms']:+.0f})" if "pipeline" in ratio else "-"
            rs = f"x{ratio['services']['ratio']} ({ratio['services']['added_ms']:+.0f})" if "services" in ratio else "-"
            lines.append(f"  {path:28} {fig(p):>12} {fig(s):>12} {fig(v):>10} {rp:>16} {rs:>16}")
        lines.append("  (medians; * = contended: fewer than half the requests undisturbed; in brackets the ms added)")
        for key, path in ROUTES.items():
            v = s_all.get(key, {})
            if "same_audio_as_services" in v:
                lines.append(f"  {path}: {v['audio_s']} s of audio, server-timing model {v['server_timing_model_median_ms']} ms "
                             f"(last {v['n']} requests), "
                             f"served audio identical to the services': {v['same_audio_as_services']}")
        for name in ("pipeline", "services", "served"):
            for key, d in route.get(name, {}).items():
                if isinstance(d, dict) and "error" in d:
                    lines.append(f"  {name} {key}: ERROR {d['error'][:300]}")
            if "error" in route.get(name, {}):
                lines.append(f"  {name}: ERROR {route[name]['error'][:400]}")
    lines.append(f"\nTotal wall time {result.get('total_wall_s')} s")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Metis and DualCodec-VALL-E cost: official sizes with random weights (AR tokens/s, NAR pass, "
                    "Metis stage-1 step) and the tiny-weight routes served vs in process.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_two_part_arguments(parser)
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs: AR decodes, NAR passes, Metis steps per cfg, requests per route and path")
    parser.add_argument("--tokens", type=int, default=50, help="new AR tokens per timed run")
    parser.add_argument("--text-tokens", type=int, default=60, help="text ids of the AR prompt")
    parser.add_argument("--prompt-seconds", type=float, default=3.0, help="seconds of 12.5 Hz prompt codes (AR, NAR)")
    parser.add_argument("--target-seconds", type=float, default=5.0, help="seconds of target codes of the NAR pass")
    parser.add_argument("--no-cache-limit", type=float, default=60.0,
                        help="run the AR's no-cache comparison only when it is estimated under this many seconds")
    parser.add_argument("--wait-quiet", type=float, default=20,
                        help="before each part, wait up to this many seconds for other processes to go quiet")
    parser.add_argument("--quiet-cores", type=float, default=0.3,
                        help="a sample counts as undisturbed when other processes kept at most this many cores busy")
    parser.add_argument("--retries", type=int, default=1,
                        help="reruns of a contended official child or a contended route measurement")
    parser.add_argument("--child-timeout", type=float, default=600, help="seconds per official-size child")
    parser.add_argument("--name", default="metis_valle", help="results file: bench_results/<name>.json")
    parser.add_argument("--child", choices=OFFICIAL, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if min(opts.repeats, opts.threads, opts.tokens, opts.text_tokens) < 1:
        parser.error("--repeats, --threads, --tokens and --text-tokens must be at least 1")
    if opts.tokens < 2:
        parser.error("--tokens must be at least 2 (the first token comes with the prefill)")
    if opts.prompt_seconds * VALLE_FRAME_RATE < 5:
        parser.error("--prompt-seconds must give at least 5 code frames (0.4 s): the NAR needs them")
    return opts


def main() -> None:
    run_two_part_benchmark(parse_args(), child=BENCH.child_main, official_part=official_part, route_part=route_part,
                           summary=summary)


if __name__ == "__main__":
    main()

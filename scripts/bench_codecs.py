"""Codec throughput in seconds of audio per second of compute ("x real time"), measured in one run:

  dualcodec  DualCodec 12hz_v1 and 25hz_v1 through ``deployments.codec.DualCodecService`` (its w2v-bert
             deployment handle replaced by a small in-process adapter, no Ray), against the raw model
             calls (w2v-bert ``encode_raw`` + ``DualCodec.encode``; ``DualCodec.decode``)
  facodec    FACodec through ``deployments.codec.FACodecService`` against ``FACodec.encode/decode``

For each: N clips of D seconds (speech-like test signal) encoded and decoded one at a time after a
warm-up, service and raw calls interleaved clip by clip so that a busy neighbour slows both alike,
both on the same worker threads (see :class:`WorkerThreads`); the difference is the serving overhead
(resampling, padding, numpy and WAV conversion, the handle and thread hops). Then the batch
gain: the services' ``_encode_items`` / ``_decode_items`` on a batch of B equal-length clips against
B calls of one clip, alternated ``--batch-repeats`` times; the ratio uses the least disturbed of each.

Weights: ``--weights tiny`` (seeded small models, what runs on a CPU), ``--weights pretrained`` (the
official files, e.g. on a GPU machine), or ``--official-size-random``: the official architectures
with seeded random weights, built in place (no download), to measure official-size speed without
the files. w2v-bert-2.0 (17 of 24 layers, 411 M parameters) is not built at official size unless
``--official-w2v-bert on`` (``auto``: on for CUDA only; on this CPU it runs at ~0.5x real time):
without it the DualCodec service receives random features of the right shape [F, 1024] and its
encode figures are the codec part only (the output says so).

Each codec family runs in its own child process (own memory, own torch threads); results go to
bench_results/codecs_<weights>_<device>.json; the last printed line is the same figures as JSON.

    .venv/bin/python scripts/bench_codecs.py [--clips 5] [--seconds 10] [--threads 2] [--device cpu]
    .venv/bin/python scripts/bench_codecs.py --official-size-random --clips 2 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import soundfile as sf

from bench_common import RESULTS, ROOT, percentiles, speech_like_wav
from bench_maskgct import CpuWindow, _cpu_name, official_w2v_bert_config, wait_quiet

FAMILIES = ("dualcodec", "facodec")
DUALCODEC_MODELS = ("12hz_v1", "25hz_v1")
RANDOM_KIND = "official-size-random"
DUALCODEC_RATE = 24000
FACODEC_RATE = 16000


# ---------------------------------------------------------------------------------------------
# In-process stand-ins for what Ray would provide
# ---------------------------------------------------------------------------------------------


class FeatureService:
    """Answers ``hidden_states(wav16k)`` like W2VBertSemanticService, from any feature function (a
    w2v-bert built here at official size, or random features of the right shape)."""

    def __init__(self, features: Callable[[np.ndarray], np.ndarray]) -> None:
        self.features = features

    async def hidden_states(self, wav16k: np.ndarray) -> np.ndarray:
        return await asyncio.to_thread(self.features, wav16k)


def random_w2v_bert_features(width: int = 1024, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """Random float32 ``[F, width]`` with the frame count w2v-bert gives a 16 kHz clip (50 Hz)."""
    from models.maskgct.semantic_encoder import FBANK_HOP, FBANK_WINDOW

    rng = np.random.default_rng(seed)

    def features(wav16k: np.ndarray) -> np.ndarray:
        fbank_frames = 1 + (wav16k.size - FBANK_WINDOW) // FBANK_HOP
        frames = -(-fbank_frames // 2)          # the feature extractor stacks fbank frames in pairs
        return rng.standard_normal((frames, width), dtype=np.float32)

    return features


def official_size_services():
    """Service subclasses whose ``_load`` builds the official architectures with seeded random
    weights instead of resolving files: everything else is the served code path."""
    from deployments.base import Loaded, Loading
    from deployments.codec import DualCodecService, FACodecService
    from models.dualcodec.checkpoints import LoadedDualCodec, build_dualcodec
    from models.dualcodec.configs import official_config
    from models.dualcodec.semantic import SemanticNormPool, tiny_semantic_stats
    from models.facodec.codec import FACodec
    from models.facodec.configs import official_facodec_config

    note = "official architectures, seeded random weights"

    class OfficialSizeDualCodec(DualCodecService):
        def _load(self, loading: Loading) -> Loaded:
            loaded = {}
            for seed, name in enumerate(DUALCODEC_MODELS):
                codec = build_dualcodec(official_config(name), seed=seed, device=loading.device)
                mean, var = tiny_semantic_stats(seed, codec.semantic_dim)
                pool = SemanticNormPool(mean, var, codec.semantic_downsample_factor).to(loading.device)
                loaded[name] = LoadedDualCodec(codec, pool, False, note)
            return Loaded(loaded, RANDOM_KIND, note)

    class OfficialSizeFACodec(FACodecService):
        def _load(self, loading: Loading) -> Loaded:
            return Loaded(FACodec.tiny(0, config=official_facodec_config(), device=loading.device), RANDOM_KIND, note)

    return OfficialSizeDualCodec, OfficialSizeFACodec


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


def test_clip(seconds: float, sample_rate: int) -> np.ndarray:
    audio, sr = sf.read(io.BytesIO(speech_like_wav(seconds, sr=sample_rate)), dtype="float32")
    assert sr == sample_rate
    return audio


def synchronizer(device: str) -> Callable[[], None]:
    """Waits for queued GPU work, so that a raw model call's time is its compute, not its launch."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


class WorkerThreads:
    """Runs every timed call the way the services run inference: from one event loop, on its worker
    threads (``asyncio.to_thread``). The raw model calls go there too, so that service and raw calls
    differ only in the serving code: with raw calls on the main thread, interleaved with service calls
    on worker threads, the raw calls came out ~25% slower than the same work through the service
    (FACodec, tiny, this CPU), which would show as a negative serving overhead."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def serve(self, method, *args):
        """``await method(*args)`` (a service's async API)."""
        return self.loop.run_until_complete(method(*args))

    def call(self, fn, *args):
        """``fn(*args)`` on a worker thread."""
        return self.loop.run_until_complete(asyncio.to_thread(fn, *args))

    def close(self) -> None:
        self.loop.close()


class Stopwatch:
    """Per-call times of one named operation, in call order."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self.sync, self.times = sync, []

    def __call__(self, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        self.sync()
        self.times.append(time.perf_counter() - t0)
        return out


def clip_figures(times: list[float], audio_s: float) -> dict:
    """Latency percentiles; x real time over all calls, and of the fastest (least disturbed) call."""
    return {**percentiles(times), "x_real_time": round(audio_s * len(times) / sum(times), 2),
            "x_real_time_best": round(audio_s / min(times), 2)}


def overhead(audio_s: float, service: list[float], *raw: list[float]) -> dict:
    """Service cost over the raw model calls of the same rounds (``raw`` parts summed per round):
    the median of the per-round differences, so that a round slowed by a neighbour counts once."""
    raw_per_round = [sum(parts) for parts in zip(*raw)]
    diffs = [s - r for s, r in zip(service, raw_per_round)]
    return {"raw_x_real_time": round(audio_s * len(raw_per_round) / sum(raw_per_round), 2),
            "service_overhead_ms_per_clip": round(statistics.median(diffs) * 1000, 2),
            "service_overhead_share": round(statistics.median(d / s for d, s in zip(diffs, service)), 3)}


def batch_gain(items_fn: Callable[[list], list], item: dict, opts) -> dict:
    """``items_fn([item] * opts.batch)`` against ``opts.batch`` calls of ``items_fn([item])``, alternated
    ``opts.batch_repeats`` times; the least disturbed time of each counts. Only the one-item call is
    warmed up: at official sizes on a CPU a batch-shaped warm-up would cost as much as the measurement
    (up to half a minute for FACodec decode), and the first batch's extra setup is small next to that."""
    batch, audio_s = opts.batch, opts.batch_seconds
    items_fn([item])
    singles, batches, busy = [], [], []
    for _ in range(opts.batch_repeats):
        with CpuWindow() as window:
            t0 = time.perf_counter()
            for _ in range(batch):
                items_fn([item])
            singles.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            items_fn([item] * batch)
            batches.append(time.perf_counter() - t0)
        busy.append(window.figures["other_busy_cores"])
    one_at_a_time = batch * audio_s / min(singles)
    batched = batch * audio_s / min(batches)
    return {"size": batch, "clip_s": audio_s, "one_at_a_time_x_real_time": round(one_at_a_time, 2),
            "batched_x_real_time": round(batched, 2), "ratio": round(batched / one_at_a_time, 2),
            "one_at_a_time_s": [round(t, 3) for t in singles], "batch_s": [round(t, 3) for t in batches],
            "other_busy_cores": busy}


def measure_rounds(opts, sync: Callable[[], None], one_round: Callable) -> tuple[dict, dict, object]:
    """``opts.warmup`` untimed rounds, then ``opts.clips`` timed ones. ``one_round(run)`` makes every call
    as ``run(name, fn, *args)``; returns (times per name, CPU figures of the timed rounds, last
    round's return value)."""
    stopwatches: dict[str, Stopwatch] = {}

    def timed(name: str, fn, *args):
        return stopwatches.setdefault(name, Stopwatch(sync))(fn, *args)

    for _ in range(opts.warmup):
        last = one_round(lambda name, fn, *args: fn(*args))
    with CpuWindow() as window:
        for _ in range(opts.clips):
            last = one_round(timed)
    return {name: s.times for name, s in stopwatches.items()}, window.figures, last


def params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# DualCodec (child process)
# ---------------------------------------------------------------------------------------------


def semantic_front_end(opts) -> tuple[object, Callable | None, str]:
    """(handle for DualCodecService, raw w2v-bert call or None, what the semantic features are)."""
    from deployments.runtime import select_dtype
    from deployments.topology import LocalHandle

    if not opts.official_size_random:
        from deployments.maskgct import W2VBertSemanticService

        service = W2VBertSemanticService(weights=opts.weights, device=opts.device, torch_threads=opts.threads)
        if service.pipeline is None:
            raise RuntimeError(f"w2v-bert has no {opts.weights} weights: {service.unavailable}")
        encoder = service.pipeline.semantic_encoder
        return LocalHandle(service), encoder.encode_raw, f"w2v-bert-2.0 ({service.weights_kind} weights, layer {encoder.layer})"
    if official_w2v_bert(opts):
        from models.maskgct.semantic_encoder import OFFICIAL_LAYER, build_semantic_encoder

        encoder = build_semantic_encoder(official_w2v_bert_config(OFFICIAL_LAYER), layer=OFFICIAL_LAYER, seed=0,
                                         device=opts.device, dtype=select_dtype(None, opts.device))

        def features(wav16k: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(encoder.encode_raw(wav16k)[0].float().cpu().numpy())

        return (LocalHandle(FeatureService(features)), encoder.encode_raw,
                f"w2v-bert-2.0 at official size ({OFFICIAL_LAYER} layers, {params(encoder.model) / 1e6:.0f} M "
                "parameters), seeded random weights")
    return (LocalHandle(FeatureService(random_w2v_bert_features())), None,
            "random [F, 1024] features (w2v-bert-2.0 at official size skipped): DualCodec encode figures are the "
            "codec part only (resampling, norm + pooling, convnext, RVQ), not the w2v-bert front end")


def official_w2v_bert(opts) -> bool:
    return opts.official_w2v_bert == "on" or (opts.official_w2v_bert == "auto" and opts.device.startswith("cuda"))


def child_dualcodec(opts) -> dict:
    import torch

    from deployments.codec import DualCodecService, covering_length
    from models.dualcodec.semantic import resample_for_w2v_bert

    torch.set_num_threads(opts.threads)
    sync = synchronizer(opts.device)
    t0 = time.perf_counter()
    handle, raw_w2v_bert, semantic_what = semantic_front_end(opts)
    service_class = official_size_services()[0] if opts.official_size_random else DualCodecService
    service = service_class({"W2VBertSemantic": handle}, weights=opts.weights, device=opts.device,
                            torch_threads=opts.threads)
    if service.codec is None:
        raise RuntimeError(f"DualCodec has no {opts.weights} weights: {service.unavailable}")
    build_s = time.perf_counter() - t0
    worker = WorkerThreads()

    def served_item(audio: np.ndarray, name: str) -> dict:
        """What DualCodecService.encode hands to _encode_items: padded audio + its raw features."""
        padded = np.zeros(covering_length(audio.size, service.codec[name].codec.config), np.float32)
        padded[: audio.size] = audio
        wav16k = np.ascontiguousarray(resample_for_w2v_bert(torch.from_numpy(padded)).numpy())
        hidden = worker.serve(handle.hidden_states.remote, wav16k)
        return {"audio": padded, "wav16k": wav16k, "hidden": hidden, "model": name,
                "num_quantizers": service.codec[name].codec.max_quantizers}

    clip = test_clip(opts.seconds, DUALCODEC_RATE)
    batch_clip = test_clip(opts.batch_seconds, DUALCODEC_RATE)
    result = {"semantic_features": semantic_what, "weights": service.weights_kind, "build_s": round(build_s, 2),
              "torch_threads": torch.get_num_threads(), "models": {}}
    for name in DUALCODEC_MODELS:
        loaded = service.codec[name]
        codec = loaded.codec
        item = served_item(clip, name)
        audio_t = torch.from_numpy(item["audio"])[None, None].to(codec.device)
        hidden_t = torch.from_numpy(item["hidden"])[None].to(codec.device)

        def raw_codec_encode():
            return codec.encode(audio_t, loaded.semantic_norm_pool(hidden_t), None)

        def one_round(run) -> dict:
            tokens = run("service_encode", worker.serve, service.encode, {"audio": clip, "model": name})["tokens"]
            if raw_w2v_bert is not None:
                run("raw_w2v_bert", worker.call, raw_w2v_bert, item["wav16k"])
            semantic, acoustic = run("raw_codec_encode", worker.call, raw_codec_encode)
            decoded = run("service_decode", worker.serve, service.decode,
                          {"tokens": tokens, "model": name, "subtype": "PCM_16"})
            run("raw_decode", worker.call, codec.decode, semantic, acoustic)
            return decoded

        times, cpu, decoded = measure_rounds(opts, sync, one_round)
        figures = {key: clip_figures(t, opts.seconds) for key, t in times.items()}
        raw_encode = [times[key] for key in ("raw_codec_encode", "raw_w2v_bert") if key in times]
        batch_item = served_item(batch_clip, name)
        tokens = worker.call(service._encode_items, [batch_item])[0]["tokens"]
        result["models"][name] = {
            "params": params(codec), "frame_rate": codec.frame_rate, "num_quantizers": int(tokens.shape[0]),
            "encode": {"service": figures["service_encode"], "raw_codec": figures["raw_codec_encode"],
                       **({"raw_w2v_bert": figures["raw_w2v_bert"]} if "raw_w2v_bert" in figures else {}),
                       **overhead(opts.seconds, times["service_encode"], *raw_encode)},
            "decode": {"service": figures["service_decode"], "raw": figures["raw_decode"],
                       **overhead(opts.seconds, times["service_decode"], times["raw_decode"]),
                       "decoded_s": round(decoded["duration"], 3)},
            "cpu": cpu,
            "batch": {
                "encode": batch_gain(partial(worker.call, service._encode_items), batch_item, opts),
                "decode": batch_gain(partial(worker.call, service._decode_items), {"tokens": tokens, "model": name},
                                     opts),
            },
        }
    worker.close()
    return result


# ---------------------------------------------------------------------------------------------
# FACodec (child process)
# ---------------------------------------------------------------------------------------------


def child_facodec(opts) -> dict:
    import torch

    from deployments.codec import FACodecService

    torch.set_num_threads(opts.threads)
    sync = synchronizer(opts.device)
    t0 = time.perf_counter()
    service_class = official_size_services()[1] if opts.official_size_random else FACodecService
    service = service_class(weights=opts.weights, device=opts.device, torch_threads=opts.threads)
    if service.codec is None:
        raise RuntimeError(f"FACodec has no {opts.weights} weights: {service.unavailable}")
    build_s = time.perf_counter() - t0
    codec = service.codec
    worker = WorkerThreads()

    def decode_request(codes: dict) -> dict:
        return {k: codes[k] for k in ("prosody", "content", "acoustic", "timbre")}

    clip = test_clip(opts.seconds, FACODEC_RATE)
    wav_t = torch.from_numpy(clip)[None, None].to(codec.device)

    def one_round(run) -> dict:
        codes = run("service_encode", worker.serve, service.encode, {"audio": clip})
        raw = run("raw_encode", worker.call, codec.encode, wav_t)
        decoded = run("service_decode", worker.serve, service.decode, {**decode_request(codes), "subtype": "PCM_16"})
        run("raw_decode", worker.call, codec.decode, raw["prosody"], raw["content"], raw["acoustic"], raw["timbre"])
        return decoded

    times, cpu, decoded = measure_rounds(opts, sync, one_round)
    figures = {key: clip_figures(t, opts.seconds) for key, t in times.items()}
    batch_clip = test_clip(opts.batch_seconds, FACODEC_RATE)
    batch_codes = worker.call(service._encode_items, [{"audio": batch_clip}])[0]
    result = {
        "weights": service.weights_kind, "build_s": round(build_s, 2), "torch_threads": torch.get_num_threads(),
        "params": params(codec), "frame_rate": codec.frame_rate,
        "encode": {"service": figures["service_encode"], "raw": figures["raw_encode"],
                   **overhead(opts.seconds, times["service_encode"], times["raw_encode"])},
        "decode": {"service": figures["service_decode"], "raw": figures["raw_decode"],
                   **overhead(opts.seconds, times["service_decode"], times["raw_decode"]),
                   "decoded_s": round(decoded["duration"], 3)},
        "cpu": cpu,
        "batch": {
            "encode": batch_gain(partial(worker.call, service._encode_items), {"audio": batch_clip}, opts),
            "decode": batch_gain(partial(worker.call, service._decode_items), decode_request(batch_codes), opts),
        },
    }
    worker.close()
    return result


# ---------------------------------------------------------------------------------------------
# Parent
# ---------------------------------------------------------------------------------------------


def run_child(family: str, argv: list[str], timeout: float) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, *argv, "--child", family], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"child {family} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["child_wall_s"] = round(time.perf_counter() - t0, 1)
    return result


def summary_line(label: str, part: dict) -> list[str]:
    enc, dec = part["encode"], part["decode"]
    raw_enc = enc.get("raw_codec", enc.get("raw"))
    w2v = f" + w2v-bert {enc['raw_w2v_bert']['x_real_time']}x" if "raw_w2v_bert" in enc else ""
    batch = part["batch"]["encode"]
    return [
        f"  {label:<18} encode: service {enc['service']['x_real_time']:>8}x  raw {enc['raw_x_real_time']:>8}x"
        f" (codec {raw_enc['x_real_time']}x{w2v})  overhead {enc['service_overhead_ms_per_clip']} ms/clip (median)",
        f"  {'':<18} decode: service {dec['service']['x_real_time']:>8}x  raw {dec['raw_x_real_time']:>8}x"
        f"  overhead {dec['service_overhead_ms_per_clip']} ms/clip (median)",
        f"  {'':<18} batch of {batch['size']} ({batch['clip_s']:g} s clips) vs one at a time: encode {batch['ratio']}x,"
        f" decode {part['batch']['decode']['ratio']}x",
        f"  {'':<18} other processes kept {part['cpu']['other_busy_cores']} cores busy during the timed clips",
    ]


def summary(result: dict) -> str:
    s = result["settings"]
    lines = [f"Codec throughput, x real time (audio s / compute s); {s['weights']} weights, {s['device']}, "
             f"{s['threads']} torch threads, {s['clips']} clips of {s['seconds']:g} s, after {s['warmup']} warm-up"]
    dual = result["dualcodec"]
    if "error" in dual:
        lines.append(f"  DualCodec: {dual['error'][:300]}")
    else:
        lines.append(f"  DualCodec semantic features: {dual['semantic_features']}")
        for name, part in dual["models"].items():
            lines += summary_line(f"DualCodec {name}", part)
    fac = result["facodec"]
    lines += [f"  FACodec: {fac['error'][:300]}"] if "error" in fac else summary_line("FACodec", fac)
    lines.append(f"  total {result['total_wall_s']} s; figures: {result['saved_to']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", choices=("tiny", "pretrained"), default="tiny")
    parser.add_argument("--official-size-random", action="store_true",
                        help="official architectures with seeded random weights (no download); overrides --weights")
    parser.add_argument("--official-w2v-bert", choices=("auto", "on", "off"), default="auto",
                        help="with --official-size-random: build w2v-bert-2.0 at official size too (auto: on CUDA)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=int, default=1, help="untimed encode + decode rounds first")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batch-seconds", type=float, default=2.0, help="length of each clip of the batch test")
    parser.add_argument("--batch-repeats", type=int,
                        help="default 3 with tiny weights, 1 at official sizes (~1 s of compute per audio second on a CPU)")
    parser.add_argument("--only", choices=FAMILIES, action="append", help="measure only this family (repeatable)")
    parser.add_argument("--wait-quiet", type=float, default=10,
                        help="before each family, wait up to this many seconds for other processes to go quiet")
    parser.add_argument("--child", choices=FAMILIES, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.official_size_random and opts.weights == "pretrained":
        parser.error("--official-size-random builds random weights; leave out --weights pretrained")
    if opts.batch_repeats is None:
        opts.batch_repeats = 3 if opts.weights == "tiny" and not opts.official_size_random else 1
    return opts


def main() -> None:
    argv = sys.argv[1:]
    opts = parse_args(argv)
    if opts.child:
        print(json.dumps({"dualcodec": child_dualcodec, "facodec": child_facodec}[opts.child](opts)))
        return

    import torch

    started = time.perf_counter()
    mode = RANDOM_KIND if opts.official_size_random else opts.weights
    settings = {k: getattr(opts, k) for k in ("device", "threads", "clips", "seconds", "warmup", "batch",
                                              "batch_seconds", "batch_repeats")}
    result = {"what": "codec encode/decode throughput, x real time = seconds of audio per second of compute",
              "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
                          "gpu": torch.cuda.get_device_name() if opts.device == "cuda" else None,
                          "python": platform.python_version()},
              "settings": {"weights": mode, **settings}}
    for family in opts.only or FAMILIES:
        try:
            quiet = wait_quiet(opts.wait_quiet)
            result[family] = run_child(family, argv, timeout=600)
            result[family]["before"] = quiet
        except Exception as exc:
            result[family] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    for family in set(FAMILIES) - set(opts.only or FAMILIES):
        result[family] = {"error": "not measured (--only)"}
    result["total_wall_s"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"codecs_{mode}_{opts.device}.json"
    result["saved_to"] = str(path.relative_to(ROOT))
    path.write_text(json.dumps(result, indent=2))
    print(summary(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

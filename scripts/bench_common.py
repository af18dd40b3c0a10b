"""Shared pieces of the benchmark scripts: start the application, generate load, summarise."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
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
#: Data folders the application reads besides weights (the product fetches its own copies; machines
#: here cannot, so tests and benchmarks lend it the copies in ../shared/data): variable -> folder.
SHARED_DATA = {"AMPHION_G2P_DATA": ROOT.parent / "shared" / "data" / "maskgct_g2p",
               "AMPHION_VALLE_TEXT_DIR": ROOT.parent / "shared" / "data" / "valle_text",
               "AMPHION_VOICE_DATA": ROOT.parent / "shared" / "data" / "default_voice"}


def shared_data_env(env=None) -> dict[str, str]:
    """The SHARED_DATA variables to lend: those whose folder exists and that ``env`` (default: this
    process's environment) does not set already."""
    env = os.environ if env is None else env
    return {var: str(folder) for var, folder in SHARED_DATA.items() if var not in env and folder.is_dir()}


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
    from serve_app.backend import NOT_DEPLOYED

    os.environ["AMPHION_API_KEYS"] = BENCH_KEY
    os.environ.update(REPLICA_ENV)
    os.environ.update(shared_data_env())   # replicas inherit the driver's environment
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
            if all(body["models"][key]["status"] in ("ready", "unavailable", NOT_DEPLOYED)
                   for key in topology.built_model_keys()):
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


def start_serve_retrying(args: dict, attempts: int = 2, before_retry=None) -> tuple[str, float, list[str]]:
    """:func:`start_serve`, tried again when a busy machine needs longer than its 180 s:
    ``(base URL, seconds the successful start took, the failed attempts' messages)``."""
    errors: list[str] = []
    for attempt in range(1, attempts + 1):
        t0 = time.perf_counter()
        try:
            return start_serve(args), time.perf_counter() - t0, errors
        except RuntimeError as exc:
            errors.append(f"attempt {attempt}: {exc}")
            print(f"[served] start attempt {attempt} failed: {exc}", file=sys.stderr, flush=True)
            stop_serve()
            if attempt == attempts:
                raise
            if before_retry is not None:
                before_retry()
    raise AssertionError("unreachable")


async def post_recording(client, url: str, record: dict, **request) -> None:
    """POST and keep what a benchmark compares: ``record["body"]``, ``record["weights"]`` and the
    server's own "model" time (``Server-Timing``) appended to ``record["model_ms"]``; a non-200 raises."""
    resp = await client.post(url, **request)
    if resp.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {resp.status_code}: {resp.text[:300]}")
    timing = {name: float(dur) for name, dur in (
        p.split(";dur=") for p in resp.headers.get("server-timing", "").split(", ") if ";dur=" in p)}
    if "model" in timing:
        record.setdefault("model_ms", []).append(timing["model"])
    record["body"], record["weights"] = resp.content, resp.headers.get("x-amphion-weights")


def wav_samples(data: bytes, sample_rate: int | None = None) -> np.ndarray:
    """A WAV response's samples, float32 (checked against ``sample_rate`` when given)."""
    audio, sr = sf.read(io.BytesIO(data), dtype="float32")
    if sample_rate is not None and sr != sample_rate:
        raise ValueError(f"expected {sample_rate} Hz audio, got {sr} Hz")
    return np.ascontiguousarray(audio, np.float32)


def add_two_part_arguments(parser) -> None:
    """The options every two-part benchmark takes: torch threads, and skipping either part."""
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (official children, "
                        "in-process runs and every served replica)")
    parser.add_argument("--skip-official", action="store_true", help="skip the official-size part")
    parser.add_argument("--skip-served", action="store_true",
                        help="skip the served vs in-process part (the only part that starts Ray)")


def run_two_part_benchmark(opts, *, child, official_part, route_part, summary) -> None:
    """The shape of the two-part benchmarks: with ``--child NAME`` this process is one official-size
    model's child (prints its figures as JSON); otherwise the official part and the served part,
    saved under ``opts.name`` and summarised."""
    if opts.child:
        print(json.dumps(child(opts.child, opts)))
        return
    import platform

    import torch

    from bench_maskgct import _cpu_name

    started = time.perf_counter()
    result: dict = {"machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
                                "python": platform.python_version()},
                    "options": {k: v for k, v in vars(opts).items() if k != "child"}}
    if not opts.skip_official:
        result["official"] = official_part(opts)
    if not opts.skip_served:
        result["route_tiny"] = route_part(opts)
    result["total_wall_s"] = round(time.perf_counter() - started, 1)
    save(opts.name, result)
    print()
    print(summary(result))


# ---------------------------------------------------------------------------------------------
# Official-size models, one child process each (bench_metis_valle.py, bench_svc_noro.py)


class ChildBench:
    """The official-size part of a benchmark: each model runs in a child process of the same script
    (``--child NAME``), one at a time after the machine goes quiet, and is rerun while contended.

    ``children``: name -> ``fn(opts) -> figures``; ``key_measures``: name -> the figures (each with
    ``contended``, ``quiet_n``, ``n``) whose contention decides a rerun; ``forwarded``: the option names
    (argparse ``dest``) the child gets from the parent; ``script``: the script's path."""

    def __init__(self, script: str, children: dict, key_measures: dict, forwarded: tuple[str, ...]):
        self.script, self.children, self.key_measures, self.forwarded = script, children, key_measures, forwarded

    def child_main(self, name: str, opts) -> dict:
        """In the child: run ``name`` and add torch threads, peak RSS and which key figures were contended."""
        import torch

        from bench_tta import _status_mib

        torch.set_num_threads(opts.threads)
        with torch.inference_mode():
            result = self.children[name](opts)
        result["torch_threads"] = torch.get_num_threads()
        result["peak_rss_mib"] = _status_mib("VmHWM")
        result["contended"] = [k for k in self.key_measures[name] if result[k]["contended"]]
        return result

    def run_child(self, name: str, opts) -> dict:
        argv = [sys.executable, self.script, "--child", name]
        for dest in self.forwarded:
            argv += [f"--{dest.replace('_', '-')}", str(getattr(opts, dest))]
        env = {**os.environ, "OMP_NUM_THREADS": str(opts.threads), "MKL_NUM_THREADS": str(opts.threads)}
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=opts.child_timeout, cwd=ROOT, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"child {name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["child_wall_s"] = round(time.perf_counter() - t0, 1)
        return result

    def contention_score(self, run: dict, name: str) -> tuple:
        return (len(run["contended"]), -sum(run[k]["quiet_n"] / run[k]["n"] for k in self.key_measures[name]))

    def measure(self, names, opts, wait_quiet, how: str, rerun_until: float | None = None) -> dict:
        """Each child in turn after ``wait_quiet()``; up to ``opts.retries`` reruns while contended (none
        once the whole part has run ``rerun_until`` seconds); the least contended run kept. A child's
        failure is recorded and the others still run."""
        out: dict = {"how": how}
        started = time.perf_counter()
        for name in names:
            runs: list[dict] = []
            try:
                for attempt in range(1 + opts.retries):
                    if attempt and rerun_until is not None and time.perf_counter() - started > rerun_until:
                        runs[-1]["rerun_skipped"] = f"the run had taken over {rerun_until:g} s"
                        break
                    quiet = wait_quiet()
                    run = self.run_child(name, opts)
                    run["before"], run["attempt"] = quiet, attempt + 1
                    runs.append(run)
                    print(f"[official] {name} attempt {attempt + 1}: {run['child_wall_s']} s"
                          + (f", contended: {run['contended']}" if run["contended"] else ""), file=sys.stderr,
                          flush=True)
                    if not run["contended"]:
                        break
                best = min(runs, key=lambda r: self.contention_score(r, name))
                best["attempts"] = len(runs)
                out[name] = best
            except Exception as exc:   # one model's failure leaves the others' figures
                out[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
                print(f"[official] {name}: {out[name]['error'][:300]}", file=sys.stderr, flush=True)
        return out


def save(name: str, result: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))

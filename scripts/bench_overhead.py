"""Serving overhead per route kind (tiny weights), measured in one run:

  in-process   the route's entry deployment class called directly with the payload the ingress
               builds (every part in this process: ``serve_app.application.compose_local``), no
               Ray, no HTTP: the in-process pipeline
  app          the same FastAPI app and services in this process, called over ASGI (no Ray)
  served       the Ray Serve application with only the families the route needs
               (``args.models``), parts as their own deployments as in production

at concurrency 1 (``--concurrency`` adds more), torch threads 1 per replica. Each served row also
gives the medians of the route's ``Server-Timing`` parts (decode, model, compute, encode), so the
added time can be placed: ``model - compute`` is the ingress -> entry hop, ``compute - in-process``
the entry's calls to its parts. Targets: served p50 <= 1.3x in-process for the pipelines; a vocoder
call adds <= 10 ms.

    flock /tmp/ray.lock .venv/bin/python scripts/bench_overhead.py [--only vocoders,maskgct] [--requests 8]
    flock /tmp/ray.lock .venv/bin/python scripts/bench_overhead.py --before ../wt-before   # before / after
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

from bench_common import (BENCH_KEY, NO_LIMITS, ROOT, load, percentiles, save, shared_data_env, speech_like_wav,
                          start_serve, stop_serve)
from serve_app.backend import LocalBackend
from serve_app.metrics import server_timing

THREADS = 1
TEXT = "Hello world, this is a short test of the serving path."
REFERENCE_TEXT = "This is the reference voice."
#: The targets of issue 15: served / in-process for the pipelines, added milliseconds for a vocoder.
PIPELINE_RATIO_TARGET = 1.3
VOCODER_ADDED_MS_TARGET = 10.0


def tone(seconds: float, freq: float, sr: int) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    wave = (0.2 * sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 6))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="WAV")
    return buf.getvalue()


SPEECH = speech_like_wav(2.0)
REFERENCE = speech_like_wav(2.0, sr=16000)
SONG = tone(2.0, 220.0, 44100)


@dataclass(frozen=True)
class RouteCase:
    """One route kind: ``family`` is what ``args.models`` deploys for it; ``kind`` picks its target."""

    name: str
    family: str
    path: str
    data: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)   # form field -> WAV bytes
    kind: str = "pipeline"
    requests: int = 8


def tts(text_fields: dict | None = None) -> dict:
    return {"text": TEXT, "reference_text": REFERENCE_TEXT, "language": "en", "seed": "1", **(text_fields or {})}


CASES = (
    RouteCase("vocoder hifigan", "vocoders", "/api/vocoder/hifigan", {}, {"audio": SPEECH}, "vocoder", 40),
    RouteCase("codec dualcodec encode", "codecs", "/api/codec/dualcodec/encode", {}, {"audio": SPEECH}, "codec", 20),
    RouteCase("codec dualcodec decode", "codecs", "/api/codec/dualcodec/decode", {"tokens": None}, {}, "codec", 20),
    RouteCase("tts maskgct", "maskgct", "/api/tts/maskgct", tts(), {"reference_audio": REFERENCE}),
    RouteCase("tts vevo", "vevo", "/api/tts/vevo", tts(), {"reference_audio": REFERENCE}),
    RouteCase("vc vevo-timbre", "vevo", "/api/vc/vevo-timbre", {"seed": "1"},
              {"source_audio": SPEECH, "reference_audio": REFERENCE}),
    RouteCase("tts metis", "metis", "/api/tts/metis", tts(), {"reference_audio": REFERENCE}),
    RouteCase("tts dualcodec-valle", "valle", "/api/tts/dualcodec-valle", tts(), {"reference_audio": REFERENCE}),
    RouteCase("vc noro", "noro", "/api/vc/noro", {"seed": "1", "inference_steps": "50"},
              {"source_audio": SPEECH, "target_audio": REFERENCE}),
    RouteCase("svc transformersvc", "svc", "/api/svc/transformersvc", {"seed": "1"},
              {"content_audio": SONG, "reference_audio": REFERENCE}),
    RouteCase("svc vevosing", "vevosing", "/api/svc/vevosing", {"seed": "1"},
              {"content_audio": SONG, "reference_audio": REFERENCE}),
    RouteCase("tta audioldm", "tta", "/api/tta/audioldm", {"text": "rain on a tin roof", "seed": "1",
                                                          "num_inference_steps": "10", "audio_length_in_s": "2"}),
)


def request_of(case: RouteCase, tokens: str | None) -> dict:
    data = {k: (tokens if v is None else v) for k, v in case.data.items()}
    return {"headers": {"X-API-Key": BENCH_KEY}, "data": data,
            "files": {k: (f"{k}.wav", v, "audio/wav") for k, v in case.files.items()} or None}


def timings(resp: httpx.Response) -> dict[str, float]:
    """The answer's Server-Timing stages in ms (parsed as the ingress's metrics parse them)."""
    return {stage: seconds * 1000 for stage, seconds in server_timing(resp.headers.get("server-timing", ""))}


async def timed_posts(client: httpx.AsyncClient, url: str, request: dict, total: int,
                      concurrency: int) -> dict:
    """p50/p99 over ``total`` posts, and the medians of the answers' Server-Timing parts."""
    parts: dict[str, list[float]] = {}

    async def call():
        resp = await client.post(url, **request)
        if resp.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status_code}: {resp.text[:300]}")
        for name, ms in timings(resp).items():
            parts.setdefault(name, []).append(ms)

    lat, wall = await load(call, concurrency, total, warmup=2)
    return {**percentiles(lat), "throughput_rps": round(len(lat) / wall, 2),
            "server_timing_p50_ms": {k: round(statistics.median(v), 2) for k, v in parts.items()}}


class RecordingBackend(LocalBackend):
    """A LocalBackend that keeps the last (deployment, method, payload) it was called with."""

    last: tuple | None = None

    async def call(self, deployment, method, payload):
        self.last = (deployment, method, payload)
        return await super().call(deployment, method, payload)


def app_args(family: str, inline: bool = False) -> dict:
    """The application's args for a family's routes; ``inline``: with the local profile's
    ``inline_parts`` (config/serve.local.yaml), parts inside their entry's replica."""
    args = {"weights": "tiny", "dev_mode": False, "torch_threads": THREADS, "models": [family], **NO_LIMITS}
    if inline:
        import yaml

        config = yaml.safe_load((ROOT / "config" / "serve.local.yaml").read_text())
        args["inline_parts"] = config["applications"][0]["args"]["inline_parts"]
    return args


def in_process(cases: list[RouteCase], concurrency: list[int]) -> tuple[dict, str | None]:
    """The in-process and app columns for ``cases`` (one family at a time), and DualCodec tokens
    for the decode case (made by the encode route)."""
    import os

    from serve_app.app import configure_app, create_app
    from serve_app.application import AppArgs, compose_local
    from serve_app.settings import load_settings
    from serve_app.state import LocalStateStore, StateCore

    os.environ.update(shared_data_env())
    os.environ["AMPHION_API_KEYS"] = BENCH_KEY
    out: dict = {}
    tokens = None

    async def run_family(family: str, members: list[RouteCase]):
        nonlocal tokens
        args = AppArgs(**app_args(family))
        settings = load_settings({k: v for k, v in app_args(family).items() if k not in ("torch_threads", "models")})
        store = LocalStateStore(StateCore(settings.rate_limit_per_minute, settings.rate_limit_per_hour,
                                          settings.task_ttl_s))
        backend = RecordingBackend(compose_local(args))
        app = configure_app(create_app(), settings, backend, store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app", timeout=600) as client:
            for case in members:
                request = request_of(case, tokens)
                first = await client.post(case.path, **request)
                if first.status_code != 200:
                    out[case.name] = {"error": f"HTTP {first.status_code}: {first.text[:300]}"}
                    continue
                if case.path.endswith("/dualcodec/encode"):
                    tokens = first.text
                deployment, method, payload = backend.last
                service = backend.services[deployment]
                row = {}
                for c in concurrency:
                    async def direct():
                        await getattr(service, method)(payload)
                    lat, wall = await load(direct, c, case.requests, warmup=2)
                    row[f"c{c}"] = {"in_process": {**percentiles(lat), "throughput_rps": round(len(lat) / wall, 2)},
                                    "app": await timed_posts(client, case.path, request, case.requests, c)}
                out[case.name] = row
                print(f"[in-process] {case.name}: {json.dumps(row)}", flush=True)

    for family in dict.fromkeys(c.family for c in cases):
        asyncio.run(run_family(family, [c for c in cases if c.family == family]))
    return out, tokens


def served(cases: list[RouteCase], concurrency: list[int], tokens: str | None, inline: bool = False) -> dict:
    out: dict = {}
    for family in dict.fromkeys(c.family for c in cases):
        started = time.perf_counter()
        base = start_serve(app_args(family, inline))
        print(f"[served] {family} ready in {time.perf_counter() - started:.0f} s", flush=True)
        try:
            async def run():
                async with httpx.AsyncClient(base_url=base, timeout=600) as client:
                    for case in (c for c in cases if c.family == family):
                        request = request_of(case, tokens)
                        out[case.name] = {f"c{c}": await timed_posts(client, case.path, request, case.requests, c)
                                          for c in concurrency}
                        print(f"[served] {case.name}: {json.dumps(out[case.name])}", flush=True)
            asyncio.run(run())
        except Exception as exc:
            for case in cases:
                out.setdefault(case.name, {"error": f"{type(exc).__name__}: {exc}"[:500]})
        finally:
            stop_serve()
    return out


def serve_floor(requests: int = 60) -> dict:
    """Ray Serve's own cost on this machine: a bare application (a FastAPI ingress that reads a
    2 s WAV upload and hands its samples to a deployment that returns them as bytes), so the
    figures above can be read against what Serve costs with no model and none of our code."""
    import ray
    from fastapi import FastAPI, File, UploadFile
    from fastapi.responses import Response
    from ray import serve

    from bench_common import free_port
    from serve_app.application import REPLICA_ENV

    os.environ.update(REPLICA_ENV)
    ray.init(num_cpus=8, include_dashboard=False, logging_level="ERROR", runtime_env={"env_vars": REPLICA_ENV})
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = FastAPI()

    @serve.deployment
    class Echo:
        async def run(self, samples):
            return samples.astype(np.int16).tobytes()

    @serve.deployment
    @serve.ingress(app)
    class Ingress:
        def __init__(self, echo):
            self.echo = echo

        async def post(self, audio=File(...)):
            data = await audio.read()
            return Response(await self.echo.run.remote(np.frombuffer(data[44:], np.int16).astype(np.float32)),
                            media_type="application/octet-stream")

        # The class itself, not the postponed string this module's annotations are: the replica
        # unpickles this function without the module's globals to resolve a name in.
        post.__annotations__["audio"] = UploadFile
        post = app.post("/echo")(post)

        @app.get("/ping")
        async def ping(self):
            return {"ok": True}

    try:
        serve.run(Ingress.bind(Echo.bind()), name="floor", route_prefix="/")
        handle = serve.get_deployment_handle("Echo", "floor")
        samples = np.zeros(48000, np.float32)

        async def ok(response):
            response = await response
            if response.status_code != 200:
                raise RuntimeError(f"serve floor: HTTP {response.status_code}: {response.text[:200]}")

        async def run():
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                out = {}
                for name, call in (("get", lambda: ok(client.get("/ping"))),
                                   ("post_upload_one_hop", lambda: ok(client.post(
                                       "/echo", files={"audio": ("a.wav", SPEECH, "audio/wav")}))),
                                   ("handle_call", lambda: handle.run.remote(samples))):
                    lat, _ = await load(call, 1, requests)
                    out[name] = percentiles(lat)
                # Inside the loop: with Serve's router on the caller's loop (RAY_SERVE_THROUGHPUT_OPTIMIZED)
                # the handle must be shut down before asyncio.run closes it.
                await serve.shutdown_async()
                return out
        return asyncio.run(run())
    finally:
        serve.shutdown()
        ray.shutdown()


def summary_rows(cases: list[RouteCase], local: dict, remote: dict, concurrency: list[int]) -> list[dict]:
    rows = []
    for case in cases:
        for c in concurrency:
            key = f"c{c}"
            here, there = local.get(case.name, {}).get(key), remote.get(case.name, {}).get(key)
            if not here or not there:
                rows.append({"route": case.name, "concurrency": c, "error": local.get(case.name, {}).get("error")
                             or remote.get(case.name, {}).get("error") or "missing"})
                continue
            base, app, srv = here["in_process"]["p50_ms"], here["app"]["p50_ms"], there["p50_ms"]
            st = there["server_timing_p50_ms"]
            row = {"route": case.name, "kind": case.kind, "concurrency": c, "in_process_p50_ms": base,
                   "app_p50_ms": app, "served_p50_ms": srv, "served_p99_ms": there["p99_ms"],
                   "ratio": round(srv / base, 3), "added_ms": round(srv - base, 2),
                   "ingress_to_entry_ms": round(st.get("model", 0) - st.get("compute", 0), 2) if "compute" in st
                   else None,
                   "entry_compute_over_in_process_ms": round(st["compute"] - base, 2) if "compute" in st else None}
            if c == 1:
                row["meets_target"] = (row["added_ms"] <= VOCODER_ADDED_MS_TARGET if case.kind == "vocoder"
                                       else row["ratio"] <= PIPELINE_RATIO_TARGET)
            rows.append(row)
    return rows


def measure(cases: list[RouteCase], concurrency: list[int], inline: bool = False) -> dict:
    local, tokens = in_process(cases, concurrency)
    remote = served(cases, concurrency, tokens, inline)
    return {"rows": summary_rows(cases, local, remote, concurrency), "in_process": local, "served": remote}


def in_tree(tree: Path, only: list[str], opts) -> dict:
    """This benchmark run by ``tree``'s own copy of it (its code, this interpreter), in a child."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, str(tree / "scripts" / "bench_overhead.py"), "--only", ",".join(only),
               "--concurrency", opts.concurrency, "--json-out", out.name] + (["--inline"] if opts.inline else [])
        if opts.requests:
            cmd += ["--requests", str(opts.requests)]
        subprocess.run(cmd, cwd=tree, check=True)
        return json.loads(Path(out.name).read_text())


def before_after(cases: list[RouteCase], opts) -> dict:
    """Each family measured by the tree before and this one, alternating which goes first."""
    trees = {"before": Path(opts.before).resolve(), "after": ROOT}
    out: dict = {"before": {"rows": []}, "after": {"rows": []}, "trees": {k: str(v) for k, v in trees.items()}}
    for i, family in enumerate(dict.fromkeys(c.family for c in cases)):
        for side in (("before", "after") if i % 2 == 0 else ("after", "before")):
            got = in_tree(trees[side], [family], opts)
            out[side]["rows"] += got["rows"]
    return out


def print_rows(rows: list[dict]) -> None:
    print("route                      c  in-proc   app      served   ratio  added  ingress>entry  parts")
    for r in rows:
        if "error" in r:
            print(f"{r['route']:26s} {r['concurrency']}  error: {r['error']}")
            continue
        dash = lambda v: "-" if v is None else v
        print(f"{r['route']:26s} {r['concurrency']}  {r['in_process_p50_ms']:8.1f} {r['app_p50_ms']:8.1f} "
              f"{r['served_p50_ms']:8.1f} {r['ratio']:6.2f} {r['added_ms']:6.1f} {dash(r['ingress_to_entry_ms']):>8} "
              f"{dash(r['entry_compute_over_in_process_ms']):>8}  {'' if r.get('meets_target', True) else 'MISSED'}")


def print_floor(floor: dict) -> None:
    print("\nRay Serve alone (no model, none of our code), p50 ms: "
          + ", ".join(f"{k} {v['p50_ms']}" for k, v in floor.items()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="", help="comma-separated route names or families (default: all)")
    parser.add_argument("--requests", type=int, default=0, help="requests per row (default: per route kind)")
    parser.add_argument("--concurrency", default="1", help="comma-separated concurrency levels")
    parser.add_argument("--before", default="", help="a checkout of the code before a change (a git worktree): "
                        "each family is measured there and here, alternately, and both tables printed")
    parser.add_argument("--inline", action="store_true", help="serve with the local profile's inline_parts "
                        "(config/serve.local.yaml: parts inside their entry's replica) instead of part deployments")
    parser.add_argument("--json-out", default="", help=argparse.SUPPRESS)   # a child run's figures
    parser.add_argument("--name", default="overhead")
    opts = parser.parse_args()
    wanted = {w.strip() for w in opts.only.split(",") if w.strip()}
    cases = [c for c in CASES if not wanted or c.family in wanted or c.name in wanted
             or c.name.split(" ", 1)[-1] in wanted]
    if any(c.path.endswith("/decode") for c in cases) and "codecs" not in {c.family for c in cases}:
        raise SystemExit("the decode case needs the encode case's tokens: include the codecs family")
    if opts.requests:
        cases = [RouteCase(**{**c.__dict__, "requests": opts.requests}) for c in cases]
    concurrency = [int(c) for c in opts.concurrency.split(",")]
    what = ("served vs in-process per route kind, tiny weights, torch threads 1, only the route's families deployed, "
            + ("parts inline (the local profile)" if opts.inline else "parts as their own deployments (production)"))
    targets = {"pipeline_ratio": PIPELINE_RATIO_TARGET, "vocoder_added_ms": VOCODER_ADDED_MS_TARGET}
    if opts.before:
        result = {"what": what, "targets": targets, **before_after(cases, opts), "serve_floor": serve_floor()}
        save(opts.name, result)
        for side in ("before", "after"):
            print(f"\n{side} ({result['trees'][side]})")
            print_rows(result[side]["rows"])
        print_floor(result["serve_floor"])
        return
    result = {"what": what, "targets": targets, **measure(cases, concurrency, opts.inline)}
    if not opts.json_out:
        result["serve_floor"] = serve_floor()
    if opts.json_out:
        Path(opts.json_out).write_text(json.dumps(result))
        return
    save(opts.name, result)
    print()
    print_rows(result["rows"])
    print_floor(result["serve_floor"])


if __name__ == "__main__":
    main()

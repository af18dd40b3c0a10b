"""Load test: N concurrent clients for T minutes over a mix of routes, several keys, progress sockets.

Pass when: every answer is 200, 429 with ``Retry-After``, or 503 with a reason (a JSON ``detail``);
every accepted (200) request whose socket was open gets its final progress event; the ingress
replicas' RSS stays bounded. Reports p50/p99 latency per route and throughput.

    # against a running application (ingress RSS sampled when its replicas run on this machine)
    .venv/bin/python scripts/load_test.py --base-url http://127.0.0.1:8000 --keys k1,k2 --clients 64 --minutes 2
    # or start the application itself (tiny weights, local Ray)
    OMP_NUM_THREADS=1 flock /tmp/ray.lock .venv/bin/python scripts/load_test.py --clients 64 --minutes 2

``tests/test_load_short.py`` runs :func:`run_load` (16 clients x 30 s) against the test session's app.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import percentiles, speech_like_wav  # noqa: E402
from fault_injection import INGRESS, STATE, FaultSchedule, wait_healthy  # noqa: E402

ALLOWED = (200, 429, 503)
# What a killed ingress replica costs the requests it holds, outside our app's reach: Ray Serve's proxy
# answers them with its own plain-text 500 (it maps only 408/429/503 from a dead replica), and their
# progress sockets drop without a close frame. Counted apart, and allowed only in runs with faults.
CASUALTY_MARKS = {"proxy_500": "HTTP 500: Internal Server Error", "socket_lost": "progress socket: ConnectionClosed"}


@dataclass
class Route:
    name: str
    path: str
    weight: float
    build: Callable[["Uploads", random.Random], tuple[dict, dict]]   # -> (form data, files)


class Uploads:
    """WAVs of whole seconds, made once each (speech-like, 24 kHz)."""

    def __init__(self, max_upload_s: float):
        self.max_upload_s = max_upload_s
        self._cache: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def wav(self, seconds: int) -> bytes:
        with self._lock:
            if seconds not in self._cache:
                self._cache[seconds] = speech_like_wav(seconds)
            return self._cache[seconds]

    def upload(self, rng: random.Random, low: int = 1, high: float | None = None) -> bytes:
        high = int(min(high or self.max_upload_s, self.max_upload_s))
        return self.wav(rng.randint(low, max(low, high)))


def _audio(field_name: str, high=None):
    def build(up: Uploads, rng: random.Random):
        return {}, {field_name: ("in.wav", up.upload(rng, high=high), "audio/wav")}
    return build


def _vc(up: Uploads, rng: random.Random):
    return {"flow_matching_steps": "4"}, {"source_audio": ("src.wav", up.upload(rng, 1, 4), "audio/wav"),
                                          "reference_audio": ("ref.wav", up.wav(3), "audio/wav")}


def _tts(up: Uploads, rng: random.Random):
    return ({"text": rng.choice(["Hello there.", "Nice to meet you.", "A short sentence to speak."]),
             "reference_text": "What the reference says.", "language": "en", "target_len": "1.0"},
            {"reference_audio": ("ref.wav", up.wav(2), "audio/wav")})


ROUTES = [
    Route("vocoder/hifigan", "/api/vocoder/hifigan", 3, _audio("audio")),
    Route("vocoder/bigvgan", "/api/vocoder/bigvgan", 2, _audio("audio")),
    Route("codec/dualcodec/encode", "/api/codec/dualcodec/encode", 2, _audio("audio")),
    Route("tts/maskgct", "/api/tts/maskgct", 1, _tts),
    Route("vc/vevo-timbre", "/api/vc/vevo-timbre", 1, _vc),
]


@dataclass
class Result:
    route: str
    status: int
    latency_s: float
    problem: str = ""
    progress_checked: bool = False
    final_event: str | None = None


@dataclass
class RssSampler:
    """Samples the RSS of the ingress replica processes (found through Ray's state API) every second."""

    interval_s: float = 1.0
    samples: dict[int, list[int]] = field(default_factory=dict)   # pid -> RSS in KiB
    error: str = ""

    @staticmethod
    def ingress_pids() -> list[int]:
        """Processes on this machine whose title names an ingress replica (Ray sets
        ``ray::ServeReplica:<app>:AmphionIngress``): no dashboard or state API needed."""
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"ServeReplica:" in cmdline and b":AmphionIngress" in cmdline:
                pids.append(int(proc.name))
        if not pids:
            raise RuntimeError("no ingress replica process on this machine")
        return pids

    async def run(self, stop: asyncio.Event) -> None:
        pids: list[int] = []
        refreshed = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() - refreshed > 5:
                    pids = await asyncio.to_thread(self.ingress_pids)
                    refreshed = time.monotonic()
                for pid in pids:
                    rss = _rss_kib(pid)
                    if rss is not None:
                        self.samples.setdefault(pid, []).append(rss)
            except Exception as exc:   # no Ray here (a remote --base-url): no RSS figures
                self.error = f"{type(exc).__name__}: {exc}"[:200]
                return
            try:
                await asyncio.wait_for(stop.wait(), self.interval_s)
            except asyncio.TimeoutError:
                pass

    def summary(self) -> dict:
        if not self.samples:
            return {"sampled": False, "error": self.error or "no ingress process found"}
        per_pid = {}
        for pid, s in self.samples.items():
            third = max(1, len(s) // 3)
            per_pid[str(pid)] = {"first_mib": round(s[0] / 1024, 1), "peak_mib": round(max(s) / 1024, 1),
                                 "last_mib": round(s[-1] / 1024, 1), "samples": len(s),
                                 # growth between the first and last third of the run: a leak shows here
                                 "growth_mib": round((max(s[-third:]) - max(s[:third])) / 1024, 1)}
        return {"sampled": True, "peak_mib": max(p["peak_mib"] for p in per_pid.values()), "per_pid": per_pid}


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _check_answer(r) -> str:
    """'' when the answer is one the contract allows, else what is wrong with it."""
    if r.status_code not in ALLOWED:
        return f"HTTP {r.status_code}: {r.text[:200]}"
    if r.status_code == 429 and not r.headers.get("retry-after"):
        return "429 without Retry-After"
    if r.status_code == 503:
        try:
            detail = r.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        if not detail:
            return f"503 without a reason: {r.text[:200]}"
    return ""


async def _one_request(client, ws_url: str, route: Route, key: str, uploads: Uploads, rng: random.Random,
                       with_progress: bool, progress_timeout_s: float, request_timeout_s: float) -> Result:
    import websockets

    task_id = f"load-{uuid.uuid4().hex[:20]}"
    data, files = route.build(uploads, rng)
    events: list[dict] = []
    listener = None
    connected = asyncio.Event()

    async def listen():
        async with websockets.connect(f"{ws_url}/ws/progress/{task_id}", additional_headers={"X-API-Key": key},
                                      open_timeout=30) as ws:
            connected.set()
            async for message in ws:
                events.append(json.loads(message))

    if with_progress:
        listener = asyncio.create_task(listen())
        done, _ = await asyncio.wait([listener, asyncio.create_task(connected.wait())], timeout=30,
                                     return_when=asyncio.FIRST_COMPLETED)
    t0 = time.perf_counter()
    try:
        r = await asyncio.wait_for(client.post(route.path, headers={"X-API-Key": key, "X-Task-ID": task_id},
                                               data=data, files=files), request_timeout_s)
    except asyncio.TimeoutError:
        if listener:
            listener.cancel()
        return Result(route.name, 0, time.perf_counter() - t0, f"no answer in {request_timeout_s:.0f} s (hang)")
    except Exception as exc:
        if listener:
            listener.cancel()
        return Result(route.name, -1, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"[:200])
    result = Result(route.name, r.status_code, time.perf_counter() - t0, _check_answer(r))
    if listener is None:
        return result
    if r.status_code == 200:
        result.progress_checked = True
        try:
            await asyncio.wait_for(asyncio.shield(listener), progress_timeout_s)
        except asyncio.TimeoutError:
            pass
        except Exception as exc:
            result.problem = result.problem or f"progress socket: {type(exc).__name__}: {exc}"[:200]
        result.final_event = events[-1]["status"] if events else None
        if result.final_event != "completed":
            result.problem = result.problem or f"accepted, but final progress event was {result.final_event!r}"
    listener.cancel()
    return result


async def run_load(base_url: str, keys: list[str], clients: int = 64, duration_s: float = 60.0,
                   max_upload_s: float = 60.0, routes: list[Route] | None = None, progress_fraction: float = 0.5,
                   sample_rss: bool = True, seed: int = 0, progress_timeout_s: float = 60.0,
                   request_timeout_s: float = 300.0, stop: asyncio.Event | None = None) -> dict:
    """Run the load; the report (``report["ok"]``: the pass criteria held; ``report["problems"]``)."""
    import httpx

    routes = routes or ROUTES
    uploads = Uploads(max_upload_s)
    ws_url = base_url.replace("http://", "ws://").replace("https://", "wss://")
    results: list[Result] = []
    stop = stop or asyncio.Event()
    sampler = RssSampler()
    sampler_stop = asyncio.Event()
    sampler_task = asyncio.create_task(sampler.run(sampler_stop)) if sample_rss else None
    deadline = time.monotonic() + duration_s
    weights = [r.weight for r in routes]
    limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=base_url, timeout=request_timeout_s, limits=limits) as client:
        async def worker(i: int):
            rng = random.Random(seed * 100_003 + i)
            while time.monotonic() < deadline and not stop.is_set():
                route = rng.choices(routes, weights)[0]
                results.append(await _one_request(client, ws_url, route, rng.choice(keys), uploads, rng,
                                                  rng.random() < progress_fraction, progress_timeout_s,
                                                  request_timeout_s))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        wall = time.perf_counter() - t0
    sampler_stop.set()
    if sampler_task:
        await sampler_task
    return summarize(results, wall, clients, sampler.summary() if sample_rss else {"sampled": False})


def summarize(results: list[Result], wall_s: float, clients: int, rss: dict) -> dict:
    per_route = {}
    for name in sorted({r.route for r in results}):
        rs = [r for r in results if r.route == name]
        ok = [r.latency_s for r in rs if r.status == 200]
        statuses: dict[str, int] = {}
        for r in rs:
            statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
        per_route[name] = {"requests": len(rs), "statuses": statuses,
                           "latency_200": percentiles(ok) if ok else None,
                           "latency_all": percentiles([r.latency_s for r in rs])}
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
    problems = [f"{r.route}: {r.problem}" for r in results if r.problem]
    casualties = fault_casualties(problems)
    checked = [r for r in results if r.progress_checked]
    return {"clients": clients, "wall_s": round(wall_s, 1), "requests": len(results), "statuses": statuses,
            "throughput_rps": round(len(results) / wall_s, 2) if wall_s else 0.0,
            "accepted_rps": round(statuses.get("200", 0) / wall_s, 2) if wall_s else 0.0,
            "progress_checked": len(checked),
            "progress_final_completed": sum(r.final_event == "completed" for r in checked),
            "per_route": per_route, "ingress_rss": rss, "problems": problems[:50],
            "problem_count": len(problems), "casualties": casualties, "ok": not problems}


def fault_casualties(problems: list[str]) -> dict[str, int]:
    """How many problems are a killed ingress replica's casualties (see CASUALTY_MARKS), by kind."""
    return {kind: sum(mark in p for p in problems) for kind, mark in CASUALTY_MARKS.items()}


def format_report(report: dict) -> str:
    lines = [f"{report['requests']} requests from {report['clients']} clients in {report['wall_s']} s "
             f"({report['throughput_rps']} req/s, {report['accepted_rps']} accepted/s); statuses {report['statuses']}; "
             f"progress: {report['progress_final_completed']}/{report['progress_checked']} final events"]
    for name, r in report["per_route"].items():
        lat = r["latency_200"] or {}
        lines.append(f"  {name:24s} n={r['requests']:4d} {r['statuses']}  200s: p50 {lat.get('p50_ms', '-')} ms, "
                     f"p99 {lat.get('p99_ms', '-')} ms")
    rss = report["ingress_rss"]
    if rss.get("sampled"):
        lines.append(f"  ingress RSS peak {rss['peak_mib']} MiB; " + "; ".join(
            f"pid {pid}: {p['first_mib']} -> {p['last_mib']} MiB (peak {p['peak_mib']}, growth {p['growth_mib']})"
            for pid, p in rss["per_pid"].items()))
    else:
        lines.append(f"  ingress RSS not sampled ({rss.get('error', '')})")
    if report.get("faults"):
        recovery = (f"all deployments healthy {report['recovered_in_s']} s after the run"
                    if report["recovered_in_s"] is not None else report["not_recovered"])
        lines.append("  faults: " + "; ".join(f"{f['at_s']} s {f['target']} ({'killed' if 'killed' in f else f['error']})"
                                          for f in report["faults"])
                     + f"; {recovery}; killed-ingress casualties {report['casualties']}")
    lines.append("PASS" if report["ok"] else f"FAIL: {report['problem_count']} problems, e.g. {report['problems'][:5]}")
    return "\n".join(lines)


# An entry replica, a part replica, an ingress replica and the shared state actor, in that order.
FAULT_TARGETS = ["MaskGCT", "MaskGCTT2S", INGRESS, STATE]
#: How long after the run every deployment must be healthy again (replacements started and ready).
RECOVERY_TIMEOUT_S = 300.0


def judge_with_faults(report: dict) -> None:
    """A run with faults passes when every fault landed, every problem is a killed ingress replica's
    casualty, and there are at most as many of each kind as clients per ingress kill."""
    kills = sum(f["target"] == INGRESS for f in report["faults"])
    casualties = report["casualties"]
    report["ok"] = (all("killed" in f for f in report["faults"]) and report["recovered_in_s"] is not None
                    and report["problem_count"] == sum(casualties.values())
                    and all(n <= report["clients"] * kills for n in casualties.values()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-url", help="a running application (default: start one on a local Ray)")
    ap.add_argument("--keys", help="comma-separated API keys (with --base-url)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--max-upload-s", type=float, default=60.0)
    ap.add_argument("--rate-per-minute", type=int, default=60, help="limit of a self-started application")
    ap.add_argument("--progress-fraction", type=float, default=0.5)
    ap.add_argument("--model-timeout-s", type=float, default=120.0,
                    help="model_timeout_s of a self-started application: an overloaded route answers 503 "
                         "after this long instead of holding the client (whose timeout is 300 s)")
    ap.add_argument("--faults", action="store_true",
                    help="with a self-started application: kill an entry replica, a part replica, an ingress "
                         "replica and the shared state actor, spread over the run")
    ap.add_argument("--name", default="load_test")
    opts = ap.parse_args()
    if opts.faults and opts.base_url:
        ap.error("--faults needs the self-started application (a driver on its Ray cluster)")

    import bench_common

    started = None
    if opts.base_url:
        base, keys = opts.base_url, (opts.keys or bench_common.BENCH_KEY).split(",")
    else:
        base = bench_common.start_serve(dict(weights="tiny", torch_threads=1, inline_parts=["vevo", "vevosing", "metis"],
                                             rate_limit_per_minute=opts.rate_per_minute,
                                             rate_limit_per_hour=opts.rate_per_minute * 60,
                                             max_content_seconds=opts.max_upload_s,
                                             model_timeout_s=opts.model_timeout_s), ingress_replicas=2)
        keys, started = [bench_common.BENCH_KEY], True
    try:
        schedule = FaultSchedule(FAULT_TARGETS, opts.minutes * 60).start() if opts.faults else None
        report = asyncio.run(run_load(base, keys, opts.clients, opts.minutes * 60, opts.max_upload_s,
                                      progress_fraction=opts.progress_fraction))
        if schedule is not None:
            report["faults"] = schedule.join()
            try:
                report["recovered_in_s"] = round(wait_healthy(RECOVERY_TIMEOUT_S), 1)
            except AssertionError as exc:   # reported, and the run fails
                report["recovered_in_s"], report["not_recovered"] = None, str(exc)
            judge_with_faults(report)
    finally:
        if started:
            bench_common.stop_serve()
    report["options"] = vars(opts)
    bench_common.save(opts.name, report)
    print(format_report(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

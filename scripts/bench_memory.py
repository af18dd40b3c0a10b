"""Memory of the whole application as a user runs it: every Serve replica's private memory.

Starts a fresh local Ray head (`ray start --head`), deploys a Serve config file with
`serve deploy` (default `config/serve.local.yaml`), times start-up until `/api/health` answers and
every model has settled, sends a little traffic through every built route (generated WAV files:
espeak-ng speech and a synthetic sung tone), then reads `/proc/PID/smaps_rollup` of every process
of that Ray session: per Serve replica (deployment, pid, private = Private_Clean + Private_Dirty,
PSS, RSS), and the other Ray processes (controller, proxy, GCS, raylet, dashboard, agents, idle
workers). Memory is read twice: once the application is ready (idle) and after the traffic.
Prints a table and saves JSON to `bench_results/memory_<timestamp>.json`. Serve and Ray are
shut down at the end whatever happens (`serve shutdown`, then `ray stop --force`).

    .venv/bin/python scripts/bench_memory.py                        # config/serve.local.yaml, port 8000
    .venv/bin/python scripts/bench_memory.py --config other.yaml --port 8123 --rounds 1

The application's code is the one beside this script (`PYTHONPATH` = this repository for the Ray
processes), so a copy of the script in another checkout measures that checkout. It refuses to
start when a Ray cluster already runs on this machine. MiB = 1024 * 1024 bytes throughout.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from bench_common import SHARED_DATA, shared_data_env  # noqa: E402
DEFAULT_CONFIG = ROOT / "config" / "serve.local.yaml"
DEFAULT_OUT = ROOT / "bench_results"
DEV_KEY = "amphion-dev-key-change-in-production"
BIN = Path(sys.executable).parent
SETTLED = {"ready", "unavailable", "not_implemented"}   # not_implemented: a route with no model built yet
REFERENCE_TEXT = "Please call Stella and ask her to bring these things with her from the store."
SOURCE_TEXT = "The quick brown fox jumps over the lazy dog."
REPLICA_TITLE = re.compile(r"^ray::ServeReplica:(?P<app>[^:\s]+):(?P<deployment>[^.\s]+)")
RAY_SYSTEM_ACTORS = {"DashboardAgent", "RuntimeEnvAgent"}
SERVE_SYSTEM_ACTORS = {"ServeController", "ProxyActor"}
MAX_ROUNDS = 6   # the local profile allows 100 requests per key per hour; a round is 15 requests


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


class Abort(Exception):
    """A clear, expected failure: printed without a traceback."""


# --------------------------------------------------------------------------------------------
# Processes and their memory


def read_proc(pid: int) -> dict | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    ppid = int(stat.rsplit(")", 1)[1].split()[1])
    parts = [p.decode(errors="replace") for p in raw.split(b"\0") if p]
    return {"pid": pid, "ppid": ppid, "argv": parts, "cmdline": " ".join(parts).strip()}


def all_procs() -> dict[int, dict]:
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = read_proc(int(entry))
            if info is not None:
                procs[info["pid"]] = info
    return procs


def ray_cluster_processes(procs: dict[int, dict]) -> list[dict]:
    """GCS servers and raylets running on this machine (any session)."""
    return [p for p in procs.values()
            if p["argv"] and Path(p["argv"][0]).name in ("gcs_server", "raylet")]


def session_processes(session_dir: str) -> dict[int, dict]:
    """Every process of one Ray session: those naming the session dir in their command line (GCS,
    raylet, dashboard, monitors, client server) and all their descendants (workers, agents)."""
    procs = all_procs()
    session = [pid for pid, p in procs.items() if session_dir in p["cmdline"]
               and ("site-packages/ray" in p["cmdline"] or p["cmdline"].startswith("ray::"))]
    children: dict[int, list[int]] = {}
    for pid, p in procs.items():
        children.setdefault(p["ppid"], []).append(pid)
    found, todo = set(), list(session)
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, []))
    found.discard(os.getpid())
    return {pid: procs[pid] for pid in found}


def smaps_rollup(pid: int) -> dict | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            text = f.read()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        match = re.match(r"^(\w+):\s+(\d+) kB", line)
        if match:
            fields[match.group(1)] = int(match.group(2))
    return fields


def process_name(p: dict, procs: dict[int, dict] | None = None) -> str:
    """`ray::` titles without the method, else the program: binary, Python script or module; a
    `python -c` child (multiprocessing, dashboard modules) is named after its parent."""
    cmd = p["cmdline"]
    if cmd.startswith("ray::"):
        return cmd.split()[0][len("ray::"):]
    argv = p["argv"]
    if not argv:
        return "?"
    exe = Path(argv[0]).name
    if len(argv) == 1 and " " in argv[0]:   # a title set by the process itself (setproctitle)
        return argv[0].split()[0]
    if exe.startswith("python"):
        scripts = [Path(a).name for a in argv[1:] if a.endswith(".py")]
        if scripts:
            return scripts[0]
        if "-m" in argv[1:-1]:
            return argv[argv.index("-m") + 1]
        if "-c" in argv[1:]:
            kind = "multiprocessing" if "multiprocessing" in cmd else "python -c"
            parent = (procs or {}).get(p["ppid"])
            parent_name = process_name(parent) if parent else f"pid {p['ppid']}"
            return f"{kind} child of {parent_name}"
    return exe


def environ_value(pid: int, name: str) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    prefix = name.encode() + b"="
    for item in raw.split(b"\0"):
        if item.startswith(prefix):
            return item[len(prefix):].decode(errors="replace")
    return None


def mib(kb: int) -> float:
    return round(kb / 1024, 1)


def snapshot(session_dir: str, replica_pids: dict[int, dict]) -> dict:
    """Memory of every process of the session; replicas identified by Serve's own list of
    replica pids, or by the process title Ray gives them (`ray::ServeReplica:<app>:<deployment>`)."""
    rows = []
    procs = session_processes(session_dir)
    for pid, p in sorted(procs.items()):
        mem = smaps_rollup(pid)
        if mem is None:
            continue   # exited meanwhile, or a kernel thread
        name = process_name(p, procs)
        title = REPLICA_TITLE.match(p["cmdline"])
        served = replica_pids.get(pid)
        if served or title:
            category = "replica"
            deployment = served["deployment"] if served else title.group("deployment")
            app = served["app"] if served else title.group("app")
        else:
            deployment = app = None
            if name in SERVE_SYSTEM_ACTORS:
                category = "serve_system"
            elif name == "IDLE":
                category = "idle_worker"
            elif p["cmdline"].startswith("ray::") and name not in RAY_SYSTEM_ACTORS:
                category = "other_actor"
            else:
                category = "ray_system"
        private = mem.get("Private_Clean", 0) + mem.get("Private_Dirty", 0)
        rows.append({
            "pid": pid, "ppid": p["ppid"], "name": name, "cmdline": p["cmdline"][:240], "category": category,
            "app": app, "deployment": deployment,
            "private_kb": private, "pss_kb": mem.get("Pss", 0), "rss_kb": mem.get("Rss", 0),
            "swap_kb": mem.get("Swap", 0), "private_mib": mib(private), "pss_mib": mib(mem.get("Pss", 0)),
            "rss_mib": mib(mem.get("Rss", 0)),
        })
    replicas = [r for r in rows if r["category"] == "replica"]
    others = [r for r in rows if r["category"] != "replica"]
    per_deployment: dict[str, dict] = {}
    for r in replicas:
        d = per_deployment.setdefault(r["deployment"], {"replicas": 0, "private_kb": 0, "pss_kb": 0})
        d["replicas"] += 1
        d["private_kb"] += r["private_kb"]
        d["pss_kb"] += r["pss_kb"]
    for d in per_deployment.values():
        d["private_mib"], d["pss_mib"] = mib(d["private_kb"]), mib(d["pss_kb"])
    by_category: dict[str, dict] = {}
    for r in others:
        c = by_category.setdefault(r["category"], {"processes": 0, "private_kb": 0})
        c["processes"] += 1
        c["private_kb"] += r["private_kb"]
    for c in by_category.values():
        c["private_mib"] = mib(c["private_kb"])
    totals = {
        "replica_count": len(replicas),
        "replicas_private_kb": sum(r["private_kb"] for r in replicas),
        "replicas_pss_kb": sum(r["pss_kb"] for r in replicas),
        "other_process_count": len(others),
        "other_private_kb": sum(r["private_kb"] for r in others),
        "other_pss_kb": sum(r["pss_kb"] for r in others),
    }
    totals["grand_private_kb"] = totals["replicas_private_kb"] + totals["other_private_kb"]
    totals["grand_pss_kb"] = totals["replicas_pss_kb"] + totals["other_pss_kb"]
    for key in list(totals):
        if key.endswith("_kb"):
            totals[key[:-3] + "_mib"] = mib(totals[key])
    return {"time": datetime.now().isoformat(timespec="seconds"), "meminfo": meminfo(),
            "processes": rows, "per_deployment": dict(sorted(per_deployment.items())),
            "others_by_category": by_category, "totals": totals}


def meminfo() -> dict:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            if key in ("MemTotal", "MemAvailable", "Shmem"):
                out[key + "_mib"] = mib(int(value.split()[0]))
    return out


# --------------------------------------------------------------------------------------------
# Ray and Serve


def run(cmd: list[str], env: dict, timeout: float, what: str, check: bool = True) -> subprocess.CompletedProcess:
    log(f"$ {' '.join(cmd)}")
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise Abort(f"{what} did not finish within {timeout:.0f} s") from exc
    if check and done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise Abort(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_token() -> str | None:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


class Cluster:
    """A local Ray head started with `ray start --head`, and Serve on it through `serve` CLI calls."""

    def __init__(self, env: dict, dashboard_port: int, num_cpus: int | None):
        self.env = env
        self.gcs_port = free_port()
        self.dashboard_port = dashboard_port
        self.num_cpus = num_cpus
        self.dashboard = f"http://127.0.0.1:{dashboard_port}"
        self.session_dir: str | None = None
        self.started_pids: set[int] = set()
        self.auth_ok = True

    def start(self) -> None:
        cmd = [str(BIN / "ray"), "start", "--head", f"--port={self.gcs_port}", "--dashboard-host=127.0.0.1",
               f"--dashboard-port={self.dashboard_port}", "--disable-usage-stats"]
        if self.num_cpus is not None:
            cmd.append(f"--num-cpus={self.num_cpus}")
        try:
            run(cmd, self.env, 180, "ray start")
        finally:
            procs = all_procs()
            for p in ray_cluster_processes(procs):
                self.started_pids.add(p["pid"])
                match = re.search(r"--log_dir=(\S+)/logs\b", p["cmdline"])
                if match:
                    self.session_dir = match.group(1)
        if not self.session_dir:
            raise Abort("ray start finished but no GCS server / raylet with a session directory was found")
        log(f"Ray head up: session {self.session_dir}, GCS port {self.gcs_port}, dashboard {self.dashboard}")

    def deploy(self, config: Path) -> None:
        run([str(BIN / "serve"), "deploy", str(config), "-a", self.dashboard], self.env, 180, "serve deploy")

    def serve_details(self) -> dict | None:
        """GET /api/serve/applications/ on the dashboard (Serve's own view: statuses, replica pids)."""
        import httpx

        headers = {}
        token = ray_token()
        if token and self.env.get("RAY_AUTH_MODE", "").lower() != "disabled":
            headers["Authorization"] = "Bearer " + token
        try:
            r = httpx.get(self.dashboard + "/api/serve/applications/", headers=headers, timeout=10)
        except httpx.HTTPError:
            return None
        if r.status_code in (401, 403):
            if self.auth_ok:
                log(f"dashboard refused the Ray token (HTTP {r.status_code}); readiness from /api/health only")
            self.auth_ok = False
            return None
        if r.status_code != 200:
            return None
        return r.json()

    def stop(self) -> None:
        """serve shutdown, then ray stop --force; then make sure nothing this run started survives."""
        if self.session_dir:
            try:
                run([str(BIN / "serve"), "shutdown", "-y", "-a", self.dashboard], self.env, 90, "serve shutdown",
                    check=False)
            except Abort as exc:
                log(f"warning: {exc}")
        try:
            run([str(BIN / "ray"), "stop", "--force"], self.env, 90, "ray stop", check=False)
        except Abort as exc:
            log(f"warning: {exc}")
        time.sleep(1)
        left = session_processes(self.session_dir) if self.session_dir else {}
        left.update({pid: p for pid, p in all_procs().items() if pid in self.started_pids})
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if left:
            log(f"killed {len(left)} process(es) of this Ray session that survived ray stop: {sorted(left)}")
        still = ray_cluster_processes(all_procs())
        if still:
            log(f"warning: Ray processes still running after shutdown: {[p['pid'] for p in still]}")
        else:
            log("Serve and Ray are down")


def replica_pids(details: dict | None) -> dict[int, dict]:
    out = {}
    for app_name, app in ((details or {}).get("applications") or {}).items():
        for dep_name, dep in (app.get("deployments") or {}).items():
            for replica in dep.get("replicas") or []:
                if replica.get("pid"):
                    out[int(replica["pid"])] = {"app": app_name, "deployment": dep_name,
                                                "replica_id": replica.get("replica_id"),
                                                "state": replica.get("state")}
    return out


def wait_ready(cluster: Cluster, base: str, apps: list[str], timeout: float) -> dict:
    """Until Serve reports every application RUNNING and /api/health answers 200 with every model
    settled (ready / unavailable; not_implemented for routes with no model). Returns the last health."""
    import httpx

    deadline = time.monotonic() + timeout
    last_report = 0.0
    settled_polls = 0
    health, why = None, "no answer yet"
    while time.monotonic() < deadline:
        app_ok = True
        details = cluster.serve_details()
        if details is not None:
            states = {name: (details.get("applications") or {}).get(name, {}) for name in apps}
            for name, app in states.items():
                status = app.get("status", "NOT_STARTED")
                if status == "DEPLOY_FAILED":
                    raise Abort(f"application {name} failed to deploy: {app.get('message', '')[-2000:]}")
                if status != "RUNNING":
                    app_ok = False
                    why = f"application {name} is {status}"
        elif cluster.auth_ok:
            app_ok, why = False, "dashboard not answering yet"
        if app_ok:
            try:
                r = httpx.get(base + "/api/health", timeout=10)
                if r.status_code == 200:
                    health = r.json()
                    pending = {k: m.get("status") for k, m in health.get("models", {}).items()
                               if m.get("status") not in SETTLED}
                    if not pending:
                        settled_polls += 1
                        # Without Serve's own status, ask for two settled answers in a row.
                        if cluster.auth_ok or settled_polls >= 2:
                            return health
                        why = "settling"
                    else:
                        settled_polls = 0
                        why = "models not settled: " + ", ".join(f"{k}={v}" for k, v in sorted(pending.items()))
                else:
                    why = f"/api/health answered {r.status_code}"
            except httpx.HTTPError as exc:
                why = f"/api/health: {type(exc).__name__}"
        if time.monotonic() - last_report > 20:
            log(f"waiting: {why}")
            last_report = time.monotonic()
        time.sleep(2)
    raise Abort(f"the application was not ready after {timeout:.0f} s ({why})")


# --------------------------------------------------------------------------------------------
# Audio and traffic


def make_audio(folder: Path) -> dict[str, bytes]:
    """speech (source), reference (another voice) and song (a sung-like tone), as WAV bytes."""
    import numpy as np
    import soundfile as sf

    def synthetic(seconds: float, f0_of_t, sr: int = 24000) -> bytes:
        rng = np.random.default_rng(0)
        t = np.arange(int(seconds * sr)) / sr
        f0 = f0_of_t(t)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t) ** 2
        x = envelope * sum(0.25 / k * np.sin(k * phase) for k in range(1, 10)) + 0.005 * rng.standard_normal(t.shape)
        buf = io.BytesIO()
        sf.write(buf, x.astype(np.float32), sr, format="WAV", subtype="PCM_16")
        return buf.getvalue()

    audio = {}
    espeak = shutil.which("espeak-ng")
    for name, voice, text in (("speech", "en-us", SOURCE_TEXT), ("reference", "en-us+f3", REFERENCE_TEXT)):
        path = folder / f"{name}.wav"
        if espeak:
            subprocess.run([espeak, "-v", voice, "-s", "165", "-w", str(path), text], check=False,
                           capture_output=True, timeout=60)
        if path.is_file() and path.stat().st_size > 10000:
            audio[name] = path.read_bytes()
        else:   # no espeak-ng: a voiced synthetic signal
            audio[name] = synthetic(3.0, lambda t: 140 + 30 * np.sin(2 * np.pi * 0.7 * t))
    notes = np.array([220.0, 246.9, 261.6, 293.7, 329.6, 293.7])   # A3 B3 C4 D4 E4 D4, half a second each
    audio["song"] = synthetic(3.0, lambda t: notes[np.minimum((t / 0.5).astype(int), len(notes) - 1)]
                              * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t)))
    for name, data in audio.items():
        (folder / f"{name}.wav").write_bytes(data)
    return audio


def requests_plan(audio: dict[str, bytes]) -> list[dict]:
    """One request per built route (two for VevoSing's modes, two for MaskGCT: with and without a
    transcript, the latter through WhisperASR); small step counts."""
    def wav(name):
        return (f"{name}.wav", audio[name], "audio/wav")

    steps = {"flow_matching_steps": "4", "seed": "7"}
    return [
        {"label": "vocoder/bigvgan", "path": "/api/vocoder/bigvgan", "files": {"audio": wav("speech")}},
        {"label": "vocoder/hifigan", "path": "/api/vocoder/hifigan", "files": {"audio": wav("speech")}},
        {"label": "vocoder/generic nsf_hifigan", "path": "/api/vocoder/generic",
         "data": {"vocoder_name": "nsf_hifigan"}, "files": {"audio": wav("speech")}},
        {"label": "codec/dualcodec/encode", "path": "/api/codec/dualcodec/encode",
         "data": {"model": "12hz_v1"}, "files": {"audio": wav("speech")}, "keep_as": "dualcodec_tokens"},
        {"label": "codec/dualcodec/decode", "path": "/api/codec/dualcodec/decode", "tokens_from": "dualcodec_tokens"},
        {"label": "codec/facodec/encode", "path": "/api/codec/facodec/encode", "files": {"audio": wav("speech")},
         "keep_as": "facodec_tokens"},
        {"label": "codec/facodec/decode", "path": "/api/codec/facodec/decode", "tokens_from": "facodec_tokens"},
        {"label": "tts/maskgct", "path": "/api/tts/maskgct",
         "data": {"text": "Hello there, nice to meet you.", "reference_text": REFERENCE_TEXT, "language": "en",
                  "target_len": "1.5", "n_timesteps": "4", "seed": "7"},
         "files": {"reference_audio": wav("reference")}},
        {"label": "tts/maskgct (no reference_text: WhisperASR)", "path": "/api/tts/maskgct",
         "data": {"text": "Hello there, nice to meet you.", "language": "en", "target_len": "1.5",
                  "n_timesteps": "4", "seed": "7"},
         "files": {"reference_audio": wav("reference")}},
        {"label": "tts/vevo (fm)", "path": "/api/tts/vevo",
         "data": {"text": "Hello there, nice to meet you.", "mode": "fm", "language": "en", **steps},
         "files": {"reference_audio": wav("reference")}},
        {"label": "vc/vevo-timbre", "path": "/api/vc/vevo-timbre", "data": dict(steps),
         "files": {"source_audio": wav("speech"), "reference_audio": wav("reference")}},
        {"label": "vc/vevo-style", "path": "/api/vc/vevo-style", "data": dict(steps),
         "files": {"source_audio": wav("speech"), "reference_audio": wav("reference")}},
        {"label": "vc/vevo-voice (ar)", "path": "/api/vc/vevo-voice", "data": {"mode": "ar", **steps},
         "files": {"source_audio": wav("speech"), "reference_audio": wav("reference")}},
        {"label": "svc/vevosing (fm)", "path": "/api/svc/vevosing", "data": {"mode": "fm", **steps},
         "files": {"content_audio": wav("song"), "reference_audio": wav("reference")}},
        {"label": "svc/vevosing (ar)", "path": "/api/svc/vevosing",
         "data": {"mode": "ar", "lyrics": "la la la, sing along with me", **steps},
         "files": {"content_audio": wav("song"), "reference_audio": wav("reference")}},
        {"label": "tts/dualcodec-valle", "path": "/api/tts/dualcodec-valle",
         "data": {"text": "Hello there.", "reference_text": REFERENCE_TEXT, "seed": "7"},
         "files": {"reference_audio": wav("reference")}},
        {"label": "tts/metis", "path": "/api/tts/metis",
         "data": {"text": "Hello there, nice to meet you.", "reference_text": REFERENCE_TEXT, "language": "en",
                  "target_len": "1.5", "n_timesteps": "4", "seed": "7"},
         "files": {"reference_audio": wav("reference")}},
        {"label": "tts/metis (built-in voice)", "path": "/api/tts/metis",
         "data": {"text": "Hello there.", "language": "en", "target_len": "1.0", "n_timesteps": "4", "seed": "7"}},
        {"label": "vc/metis", "path": "/api/vc/metis", "data": {"seed": "7"},
         "files": {"source_audio": wav("speech"), "reference_audio": wav("reference")}},
        {"label": "se/metis", "path": "/api/se/metis", "data": {"seed": "7"}, "files": {"audio": wav("speech")}},
        {"label": "tse/metis", "path": "/api/tse/metis", "data": {"seed": "7"},
         "files": {"audio": wav("speech"), "reference_audio": wav("reference")}},
        {"label": "tta/audioldm", "path": "/api/tta/audioldm",
         "data": {"text": "rain on a roof", "audio_length_in_s": "1.0", "num_inference_steps": "10", "seed": "7"}},
        *({"label": f"svc/{model}", "path": f"/api/svc/{model}",
           "data": {"seed": "7", **({"diffusion_steps": steps} if steps else {})},
           "files": {"content_audio": wav("song"), "reference_audio": wav("reference")}}
          for model, steps in (("multiplecontentssvc", "4"), ("diffcomosvc", "3"), ("transformersvc", None),
                               ("vitssvc", None))),
        {"label": "vc/noro", "path": "/api/vc/noro", "data": {"inference_steps": "50", "seed": "7"},
         "files": {"source_audio": wav("speech"), "target_audio": wav("reference")}},
        {"label": "tta/picoaudio", "path": "/api/tta/picoaudio",
         "data": {"text": "a dog barks at 0.5-1.0 seconds", "duration": "2.0", "num_inference_steps": "4",
                  "seed": "7"}},
    ]


def send_traffic(base: str, key: str, audio: dict[str, bytes], rounds: int, timeout: float) -> list[dict]:
    import httpx

    results = []
    kept: dict[str, str] = {}
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=timeout) as client:
        for round_no in range(1, rounds + 1):
            for req in requests_plan(audio):
                data = dict(req.get("data") or {})
                row = {"round": round_no, "route": req["label"], "path": req["path"]}
                if "tokens_from" in req:
                    if req["tokens_from"] not in kept:
                        row.update(status="skipped", latency_ms=None, detail="its encode request failed")
                        results.append(row)
                        log(f"  {req['label']:<45} skipped (no tokens)")
                        continue
                    data["tokens"] = kept[req["tokens_from"]]
                t0 = time.perf_counter()
                try:
                    r = client.post(req["path"], data=data, files=req.get("files"))
                    latency = (time.perf_counter() - t0) * 1000
                    row.update(status=r.status_code, latency_ms=round(latency, 1), bytes=len(r.content),
                               weights=r.headers.get("X-Amphion-Weights"))
                    if r.status_code == 200 and "keep_as" in req:
                        kept[req["keep_as"]] = r.text
                    if r.status_code != 200:
                        row["detail"] = r.text[:300]
                except httpx.HTTPError as exc:
                    latency = (time.perf_counter() - t0) * 1000
                    row.update(status="error", latency_ms=round(latency, 1), detail=f"{type(exc).__name__}: {exc}"[:300])
                results.append(row)
                note = "" if row["status"] == 200 else f"  {row.get('detail', '')[:160]}"
                log(f"  {req['label']:<45} {row['status']!s:>5} {row['latency_ms']:>9.1f} ms{note}")
    return results


# --------------------------------------------------------------------------------------------
# Report


def print_report(result: dict) -> None:
    idle, after = result["memory"]["idle"], result["memory"]["after_traffic"]
    idle_by_pid = {r["pid"]: r for r in idle["processes"]}
    print()
    print(f"config {result['config']}  code {result['code_root']} ({result['git']})")
    print(f"start-up: ray start {result['timings']['ray_start_s']} s, "
          f"deploy -> ready {result['timings']['startup_s']} s")
    print()
    print("Serve replicas after traffic (MiB; idle = when the application became ready)")
    print(f"{'deployment':<24} {'pid':>7} {'private':>9} {'idle':>9} {'PSS':>9} {'RSS':>9}")
    replicas = sorted((r for r in after["processes"] if r["category"] == "replica"),
                      key=lambda r: (r["deployment"], r["pid"]))
    for r in replicas:
        before = idle_by_pid.get(r["pid"])
        idle_private = f"{before['private_mib']:.1f}" if before else "-"
        print(f"{r['deployment']:<24} {r['pid']:>7} {r['private_mib']:>9.1f} {idle_private:>9} "
              f"{r['pss_mib']:>9.1f} {r['rss_mib']:>9.1f}")
    print()
    print("Replicas per deployment")
    print(f"{'deployment':<24} {'replicas':>8} {'private':>9} {'PSS':>9}")
    for name, d in after["per_deployment"].items():
        print(f"{name:<24} {d['replicas']:>8} {d['private_mib']:>9.1f} {d['pss_mib']:>9.1f}")
    print()
    print("Other Ray processes after traffic (MiB)")
    print(f"{'process':<44} {'category':<13} {'pid':>7} {'private':>9} {'PSS':>9}")
    for r in sorted((r for r in after["processes"] if r["category"] != "replica"),
                    key=lambda r: (r["category"], r["name"], r["pid"])):
        print(f"{r['name'][:44]:<44} {r['category']:<13} {r['pid']:>7} {r['private_mib']:>9.1f} {r['pss_mib']:>9.1f}")
    print()
    print("Traffic")
    print(f"{'round':>5} {'route':<45} {'status':>7} {'latency ms':>11}")
    for row in result["traffic"]:
        latency = "-" if row["latency_ms"] is None else f"{row['latency_ms']:.1f}"
        print(f"{row['round']:>5} {row['route']:<45} {row['status']!s:>7} {latency:>11}")
    failed = [row for row in result["traffic"] if row["status"] != 200]
    for row in failed:
        print(f"  not 200: round {row['round']} {row['route']}: {row['status']} {row.get('detail', '')[:200]}")
    print()
    print("Totals (MiB)                       idle   after traffic")
    for label, key in (("replicas", "replica_count"),):
        print(f"  {label:<30} {idle['totals'][key]:>7} {after['totals'][key]:>15}")
    for label, key in (("replicas' private", "replicas_private_mib"), ("other Ray processes' private", "other_private_mib"),
                       ("grand total private", "grand_private_mib"), ("replicas' PSS", "replicas_pss_mib"),
                       ("grand total PSS", "grand_pss_mib")):
        print(f"  {label:<30} {idle['totals'][key]:>7.1f} {after['totals'][key]:>15.1f}")
    cats = ", ".join(f"{c} {v['processes']} proc {v['private_mib']:.1f}" for c, v in
                     sorted(after["others_by_category"].items()))
    print(f"  others by category (after traffic): {cats}")
    print(f"  machine: MemAvailable {after['meminfo'].get('MemAvailable_mib')} MiB of "
          f"{after['meminfo'].get('MemTotal_mib')} MiB after traffic")


def git_describe() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+uncommitted changes" if dirty else "") if head else "not a git checkout"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# --------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help=f"Serve config file to deploy (default: {DEFAULT_CONFIG.relative_to(ROOT)})")
    parser.add_argument("--port", type=int, default=None,
                        help="HTTP port of the application (default: http_options.port of the config, else 8000); "
                             "when it differs from the config's, a copy of the config with this port is deployed")
    parser.add_argument("--dashboard-port", type=int, default=8265,
                        help="Ray dashboard port; a free one is picked when it is taken (default: 8265)")
    parser.add_argument("--num-cpus", type=int, default=None, help="ray start --num-cpus (default: Ray detects)")
    parser.add_argument("--rounds", type=int, default=2,
                        help=f"passes over every route (1 to {MAX_ROUNDS}: the local profile's rate limit is "
                             "100 requests per key per hour); 0 sends no traffic (default: 2)")
    parser.add_argument("--key", default=DEV_KEY, help="API key for the requests (default: the development key, accepted in dev_mode)")
    parser.add_argument("--startup-timeout", type=float, default=600, help="seconds to wait for the application (default: 600)")
    parser.add_argument("--request-timeout", type=float, default=300, help="seconds per request (default: 300)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for memory_<timestamp>.json (default: bench_results/ of this repository)")
    args = parser.parse_args()
    if not 0 <= args.rounds <= MAX_ROUNDS:
        parser.error(f"--rounds must be 0 to {MAX_ROUNDS}")
    return args


def prepare_config(path: Path, port: int | None, workdir: Path) -> tuple[Path, str, int, list[str], dict]:
    import yaml

    if not path.is_file():
        raise Abort(f"config file not found: {path}")
    config = yaml.safe_load(path.read_text()) or {}
    http = config.get("http_options") or {}
    host = http.get("host") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    config_port = int(http.get("port") or 8000)
    apps = [a.get("name", "default") for a in config.get("applications") or []]
    if not apps:
        raise Abort(f"{path} names no application")
    deploy_path = path
    if port is not None and port != config_port:
        config.setdefault("http_options", {})["port"] = port
        deploy_path = workdir / f"{path.stem}.port{port}.yaml"
        deploy_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return deploy_path, host, port or config_port, apps, config


def main() -> int:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench_memory_"))
    try:
        return measure(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure(args: argparse.Namespace, workdir: Path) -> int:
    started = datetime.now()
    config_path = args.config.resolve()
    deploy_path, host, port, apps, config = prepare_config(config_path, args.port, workdir)

    if ray_cluster_processes(all_procs()):
        raise Abort("a Ray cluster already runs on this machine (gcs_server / raylet found): stop it first "
                    "(this benchmark measures a fresh head of its own)")
    if not port_free(host, port):
        raise Abort(f"HTTP port {port} on {host} is taken: free it or pass --port")
    dashboard_port = args.dashboard_port
    if not port_free("127.0.0.1", dashboard_port):
        dashboard_port = free_port()
        log(f"dashboard port {args.dashboard_port} is taken; using {dashboard_port}")

    env = dict(os.environ)
    env.setdefault("RAY_AUTH_MODE", "token")   # Ray 2.60 turns token auth on for local clusters (Makefile `status`)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(shared_data_env(env))
    env.pop("RAY_ADDRESS", None)
    log(f"code under test: {ROOT} ({git_describe()}); config {config_path}"
        + (f" deployed as {deploy_path} (port {port})" if deploy_path != config_path else ""))
    log(f"AMPHION_G2P_DATA={env.get('AMPHION_G2P_DATA', '(unset)')}  RAY_AUTH_MODE={env['RAY_AUTH_MODE']}")

    audio = make_audio(workdir)
    log("test audio: " + ", ".join(f"{k} {len(v) / 1024:.0f} KiB" for k, v in audio.items()) + f" in {workdir}")

    cluster = Cluster(env, dashboard_port, args.num_cpus)
    base = f"http://{host}:{port}"
    result: dict = {"started": started.isoformat(timespec="seconds"), "config": str(config_path),
                    "deployed_config": str(deploy_path), "code_root": str(ROOT), "git": git_describe(),
                    "http": base, "rounds": args.rounds, "environment": {
                        **{variable: env.get(variable) for variable in SHARED_DATA}, "PYTHONPATH": env["PYTHONPATH"],
                        "RAY_AUTH_MODE": env["RAY_AUTH_MODE"]},
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "ray": _version("ray"), "torch": _version("torch"), **meminfo()},
                    "args": (config.get("applications") or [{}])[0].get("args")}
    try:
        t0 = time.monotonic()
        cluster.start()
        t_deploy = time.monotonic()
        cluster.deploy(deploy_path)
        t_deployed = time.monotonic()
        health = wait_ready(cluster, base, apps, args.startup_timeout)
        t_ready = time.monotonic()
        result["timings"] = {"ray_start_s": round(t_deploy - t0, 1),
                             "deploy_command_s": round(t_deployed - t_deploy, 1),
                             "startup_s": round(t_ready - t_deploy, 1)}
        result["health"] = {"status": health.get("status"),
                            "models": {k: {"status": m.get("status"), "weights": m.get("weights"),
                                           "detail": m.get("detail")} for k, m in health.get("models", {}).items()},
                            "warnings": len(health.get("warnings", []))}
        log(f"ready {t_ready - t_deploy:.1f} s after serve deploy; health {health.get('status')}; "
            + ", ".join(f"{k}={m['status']}" for k, m in sorted(result["health"]["models"].items())
                        if m["status"] != "not_implemented"))
        time.sleep(3)   # let just-finished start-up work (imports, first health calls) die down
        details = cluster.serve_details()
        idle = snapshot(cluster.session_dir, replica_pids(details))
        log(f"idle: {idle['totals']['replica_count']} replicas, private {idle['totals']['replicas_private_mib']:.0f} MiB; "
            f"others {idle['totals']['other_private_mib']:.0f} MiB")

        if args.rounds:
            log(f"traffic: {args.rounds} round(s) over every route")
        t_traffic = time.monotonic()
        result["traffic"] = send_traffic(base, args.key, audio, args.rounds, args.request_timeout) if args.rounds else []
        result["timings"]["traffic_s"] = round(time.monotonic() - t_traffic, 1)
        time.sleep(2)
        details = cluster.serve_details()
        after = snapshot(cluster.session_dir, replica_pids(details))
        result["memory"] = {"idle": idle, "after_traffic": after}
        result["serve_replicas_reported"] = len(replica_pids(details)) if details is not None else None
        replicas = [r for r in after["processes"] if r["category"] == "replica"]
        result["replica_code_path"] = sorted({str(environ_value(r["pid"], "PYTHONPATH")) for r in replicas})
        if result["serve_replicas_reported"] is not None and result["serve_replicas_reported"] != len(replicas):
            log(f"warning: Serve lists {result['serve_replicas_reported']} replicas, {len(replicas)} found in /proc")
        print_report(result)
        print(f"  replicas' PYTHONPATH: {result['replica_code_path']}")
    finally:
        t_stop = time.monotonic()
        cluster.stop()
        result.setdefault("timings", {})["shutdown_s"] = round(time.monotonic() - t_stop, 1)
        if "memory" in result:
            args.out.mkdir(parents=True, exist_ok=True)
            out = args.out / f"memory_{started:%Y%m%d_%H%M%S}.json"
            out.write_text(json.dumps(result, indent=2))
            log(f"saved {out}")
    return 0


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    def _terminate(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)
    try:
        sys.exit(main())
    except Abort as exc:
        log(f"error: {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)

"""Memory: a 100 MB upload must raise the ingress replica's peak RSS by less than 150 MB.

Starts the application (weights tiny, default 100 MB / 10 min content limits), resets the ingress
replica's peak-RSS mark (/proc/PID/clear_refs, Linux), posts a 100 MB 48 kHz stereo WAV (about
8.7 minutes) to /api/vocoder/hifigan, and reads the peak (VmHWM) back.

    .venv/bin/python scripts/bench_upload_memory.py
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import soundfile as sf

from bench_common import BENCH_KEY, NO_LIMITS, save, start_serve, stop_serve

TARGET_BYTES = 100 * 1000 * 1000


def write_upload(path: Path) -> int:
    sr, channels = 48000, 2
    frames = (TARGET_BYTES - 44) // (2 * channels)
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=sr, channels=channels, subtype="PCM_16", format="WAV") as f:
        block = sr * 10
        for start in range(0, frames, block):
            n = min(block, frames - start)
            t = (start + np.arange(n)) / sr
            x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(n)
            f.write(np.stack([x, x], axis=1).astype(np.float32))
    return path.stat().st_size


def ingress_pid() -> int:
    for p in psutil.process_iter(["cmdline"]):
        if any("AmphionIngress" in part for part in (p.info["cmdline"] or [])):
            return p.pid
    raise RuntimeError("ingress replica process not found")


def vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


class RssSplitPeaks:
    """Polls the replica's private (RssAnon) and shared (RssShmem: Ray's object store pages it has
    touched) resident memory every few ms and keeps the peaks, which VmHWM lumps together."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peaks = {"RssAnon": 0, "RssShmem": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self):
        while not self._stop.is_set():
            for field in self.peaks:
                self.peaks[field] = max(self.peaks[field], vm(self.pid, field))
            time.sleep(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measure(pid: int, url: str, files: dict[str, Path]) -> dict:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak-RSS mark
    before = vm(pid, "VmRSS")
    anon_before, shm_before = vm(pid, "RssAnon"), vm(pid, "RssShmem")
    t0 = time.perf_counter()
    handles = {name: path.open("rb") for name, path in files.items()}
    try:
        with RssSplitPeaks(pid) as split:
            r = httpx.post(url, headers={"X-API-Key": BENCH_KEY},
                           files={name: (path.name, handles[name], "audio/wav") for name, path in files.items()},
                           timeout=900)
    finally:
        for f in handles.values():
            f.close()
    peak = vm(pid, "VmHWM")
    return {"status": r.status_code, "returned_audio_s": float(r.headers.get("x-audio-duration", 0)),
            "rss_before_mb": round(before / 2**20, 1), "peak_rss_mb": round(peak / 2**20, 1),
            "peak_increase_mb": round((peak - before) / 2**20, 1),
            "private_peak_increase_mb": round((split.peaks["RssAnon"] - anon_before) / 2**20, 1),
            "object_store_pages_peak_increase_mb": round((split.peaks["RssShmem"] - shm_before) / 2**20, 1),
            "request_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        upload = Path(tmp) / "long.wav"
        size = write_upload(upload)
        base = start_serve({"weights": "tiny", "dev_mode": False, "torch_threads": 1, **NO_LIMITS})
        try:
            pid = ingress_pid()
            # Warm the route first so one-time imports and allocations are not counted.
            small = Path(tmp) / "small.wav"
            sf.write(small, np.zeros(24000, np.float32) + 0.1, 24000)
            httpx.post(base + "/api/vocoder/hifigan", headers={"X-API-Key": BENCH_KEY},
                       files={"audio": small.open("rb")}, timeout=60).raise_for_status()
            time.sleep(1)
            # 1. Receiving and parsing alone: an unbuilt route reads the whole form, then answers 503.
            body_only = measure(pid, base + "/api/vc/noro", {"source_audio": upload, "target_audio": small})
            # 2. The whole vocoder request: receive, decode, model call, 25 MB WAV response.
            full = measure(pid, base + "/api/vocoder/hifigan", {"audio": upload})
            result = {
                "what": "ingress replica peak RSS during a 100 MB WAV upload",
                "upload_bytes": size,
                "receive_and_parse_only": body_only,
                "vocoder_request": full,
                # Against the replica as it was before both requests: the first large upload pays
                # for Serve's body transfer, later ones reuse that memory.
                "peak_increase_mb": round(max(body_only["peak_rss_mb"], full["peak_rss_mb"])
                                          - body_only["rss_before_mb"], 1),
                "target": "< 150 MB",
            }
            result["meets_target"] = full["status"] == 200 and result["peak_increase_mb"] < 150
            save("upload_memory", result)
        finally:
            stop_serve()


if __name__ == "__main__":
    main()

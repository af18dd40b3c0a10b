"""What oneDNN's primitive cache costs and saves in a model replica (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``).

torch's CPU convolutions build one oneDNN primitive per layer and input shape and keep it in a
process-wide cache; a primitive for a long input holds buffers that grow with the input. Each
capacity runs in its own child process (oneDNN reads the setting once) with a vocoder, tiny weights,
torch 1 thread, the replica's malloc settings:

- ``fixed``: median time of one pass when every request has the same length (every primitive
  reused: what a capacity below one pass's working set loses);
- ``new length``: median time when each request has a length not seen before (every primitive built);
- ``RSS``: the process after ``--long`` requests of 20-30 s, each a new length (what the cache holds).

    .venv/bin/python scripts/bench_conv_cache.py                     # capacities 1024 (oneDNN's) and ours
    .venv/bin/python scripts/bench_conv_cache.py --capacities 0,64,128,256,1024 --vocoder bigvgan
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def child(vocoder_name: str, long_requests: int) -> dict:
    """One capacity's figures (this process was started with it in its environment)."""
    import numpy as np
    import torch

    from deployments.runtime import configure_allocator
    from models.vocoders import load_vocoder

    configure_allocator()
    torch.set_num_threads(1)
    vocoder = load_vocoder(vocoder_name, "tiny", device="cpu", cache_dir=None)
    rng = np.random.default_rng(0)

    def audio(seconds: float):
        return (0.1 * rng.standard_normal(int(seconds * vocoder.sample_rate))).astype(np.float32)

    def one(wave) -> float:
        started = time.perf_counter()
        vocoder.vocode([vocoder.analyse(wave)], None)
        return time.perf_counter() - started

    fixed = audio(2.0)
    for _ in range(3):
        one(fixed)
    fixed_ms = 1000 * float(np.median([one(fixed) for _ in range(10)]))
    new_ms = 1000 * float(np.median([one(audio(rng.uniform(1.5, 2.5))) for _ in range(10)]))
    for _ in range(long_requests):
        one(audio(rng.uniform(20.0, 30.0)))
    rss_mib = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return {"fixed_ms": round(fixed_ms, 1), "new_length_ms": round(new_ms, 1), "rss_mib": round(rss_mib)}


def main() -> None:
    from bench_common import save
    from deployments.runtime import ONEDNN_PRIMITIVE_CACHE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capacities", default=f"1024,{ONEDNN_PRIMITIVE_CACHE}")
    parser.add_argument("--vocoder", default="hifigan")
    parser.add_argument("--long", type=int, default=12, help="requests of 20-30 s, each a new length")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        print(json.dumps(child(opts.vocoder, opts.long)))
        return
    rows = []
    for capacity in opts.capacities.split(","):
        env = {**os.environ, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": capacity, "AMPHION_COMPILE": "0"}
        out = subprocess.run([sys.executable, __file__, "--child", "--vocoder", opts.vocoder, "--long", str(opts.long)],
                             env=env, cwd=ROOT, check=True, capture_output=True, text=True).stdout
        rows.append({"capacity": int(capacity), **json.loads(out.strip().splitlines()[-1])})
        print(f"capacity {capacity:>5}: fixed {rows[-1]['fixed_ms']} ms, new length {rows[-1]['new_length_ms']} ms, "
              f"RSS after {opts.long} long requests {rows[-1]['rss_mib']} MiB", flush=True)
    save("conv_cache", {"vocoder": opts.vocoder, "long_requests": opts.long, "ours": int(ONEDNN_PRIMITIVE_CACHE),
                        "rows": rows})


if __name__ == "__main__":
    main()

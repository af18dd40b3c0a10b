"""Streamed TTS (``stream=true``): time to first audio against the whole answer's latency, per TTS
route, on the whole application with tiny weights (a local Ray: run it under ``flock /tmp/ray.lock``).

For a four-sentence text each route is asked, ``--runs`` times after one warm-up of each kind:

* streamed (WAV): the time until the first audio bytes arrive, and until the stream ends;
* whole (the same request without ``stream``): the time until the answer arrives;
* the first sentence alone (whole, seed as the stream's first sentence): one sentence's compute,
  what the first audio of a stream should cost.

Medians are printed and saved to ``bench_results/streaming.json``.

    flock /tmp/ray.lock .venv/bin/python scripts/bench_streaming.py --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import httpx

from bench_common import BENCH_KEY, NO_LIMITS, save, speech_like_wav, start_serve_retrying, stop_serve
from serve_app.sentences import split_sentences  # the repository root is on sys.path (bench_common)

TEXT = ("The first sentence is here. The second one follows it! Is this the third sentence? "
        "And this is the fourth.")
REFERENCE_TEXT = "A reference sentence spoken here."
SEED = 11
# The routes' own defaults except where tiny weights would make a stage dominate for no reason.
ROUTES = {
    "maskgct": ("/api/tts/maskgct", {"reference_text": REFERENCE_TEXT, "language": "en"}),
    "vevo": ("/api/tts/vevo", {"language": "en"}),
    "metis": ("/api/tts/metis", {"reference_text": REFERENCE_TEXT, "language": "en"}),
    "dualcodec-valle": ("/api/tts/dualcodec-valle", {"reference_text": REFERENCE_TEXT}),
}


def request(client: httpx.Client, url: str, fields: dict, reference: bytes, stream: bool) -> dict:
    """One request: seconds to the first body bytes and to the end, bytes received."""
    data = {**fields, "seed": str(SEED), **({"stream": "true"} if stream else {})}
    started = time.perf_counter()
    first = None
    size = 0
    with client.stream("POST", url, headers={"X-API-Key": BENCH_KEY}, data=data,
                       files={"reference_audio": ("ref.wav", reference, "audio/wav")}) as r:
        for chunk in r.iter_raw():
            if first is None:
                first = time.perf_counter() - started
            size += len(chunk)
        if r.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {r.status_code}")
    return {"first_s": first, "total_s": time.perf_counter() - started, "bytes": size}


def measure(base: str, runs: int) -> dict:
    reference = speech_like_wav(3.0)
    sentences = split_sentences(TEXT)
    out: dict = {}
    with httpx.Client(timeout=600) as client:
        for name, (path, fields) in ROUTES.items():
            url = base + path
            whole_fields = {**fields, "text": TEXT}
            alone_fields = {**fields, "text": sentences[0]}
            try:
                for kind in (True, False):           # warm-up: first calls pay for lazy set-up
                    request(client, url, whole_fields, reference, kind)
                streamed, whole, alone = [], [], []
                for _ in range(runs):
                    streamed.append(request(client, url, whole_fields, reference, True))
                    whole.append(request(client, url, whole_fields, reference, False))
                    alone.append(request(client, url, alone_fields, reference, False))
            except Exception as exc:
                out[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                print(f"[bench] {name}: {out[name]['error']}", file=sys.stderr, flush=True)
                continue
            med = lambda rows, key: round(statistics.median(r[key] for r in rows), 3)  # noqa: E731
            out[name] = {"sentences": len(sentences), "runs": runs,
                         "stream_first_audio_s": med(streamed, "first_s"), "stream_total_s": med(streamed, "total_s"),
                         "whole_s": med(whole, "total_s"), "first_sentence_alone_s": med(alone, "total_s"),
                         "all": {"streamed": streamed, "whole": whole, "alone": alone}}
            print(f"[bench] {name} done", file=sys.stderr, flush=True)
    return out


def summary(result: dict) -> str:
    lines = [f"{'route':<16} {'first audio':>11} {'stream end':>10} {'whole':>7} {'1st alone':>9} {'first/whole':>11}"]
    for name, row in result["routes"].items():
        if "error" in row:
            lines.append(f"{name:<16} {row['error']}")
            continue
        lines.append(f"{name:<16} {row['stream_first_audio_s']:>10.2f}s {row['stream_total_s']:>9.2f}s "
                     f"{row['whole_s']:>6.2f}s {row['first_sentence_alone_s']:>8.2f}s "
                     f"{row['stream_first_audio_s'] / row['whole_s']:>11.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="measured requests of each kind per route (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per replica")
    opts = parser.parse_args()
    try:                                  # start_serve lends the replicas ../shared/data (G2P, texts, voice)
        base, startup_s, start_errors = start_serve_retrying(
            {"weights": "tiny", "dev_mode": False, "torch_threads": opts.threads, **NO_LIMITS})
        result = {"what": f"tiny weights, {opts.threads} torch thread(s) per replica, 3 s reference, text "
                          f"{TEXT!r}, seed {SEED}, sequential requests, medians of {opts.runs}",
                  "startup_s": round(startup_s, 1), "start_errors": start_errors,
                  "routes": measure(base, opts.runs)}
    finally:
        stop_serve()
    save("streaming", result)
    print()
    print(summary(result))


if __name__ == "__main__":
    main()

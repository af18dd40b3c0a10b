"""Property-based fuzzing of the API against its own OpenAPI document (schemathesis + hypothesis).

Every operation of `/api/openapi.json` gets generated requests, valid (`positive`) and invalid
(`negative`: wrong types, out-of-range numbers, missing fields, bad headers), with a valid key,
without one, and with a wrong one. Each response must pass:

* no 500 (nor any 5xx but the documented 503);
* its status is one the operation documents (schemathesis' `status_code_conformance`), its content
  type too (`content_type_conformance`), and its body matches the documented schema
  (`response_schema_conformance`: error bodies `{"detail": str}`, 422's list form);
* every error body is JSON `{"detail": ...}` (a string, or FastAPI's list for 422);
* no traceback, source file path or Python repr in any body;
* a 429 carries `Retry-After`.

The document's costly fields are capped in the fuzzing copy (diffusion steps, lengths, text), and
a share of the upload fields are replaced by a short valid WAV, so that the models run on
generated settings without a run taking long; most requests fail fast (bad bytes, bad fields, no key).

    .venv/bin/python scripts/fuzz_api.py --requests 5000 --base-url http://127.0.0.1:8000 --key KEY

Several `--key`s spread the rate limits (10 per minute per endpoint, 100 per hour per key); with
one key most requests end in 429, which passes the checks when it carries `Retry-After`.
`tests/test_fuzz.py` runs a shorter pass against the test session's application.
"""

from __future__ import annotations

import argparse
import collections
import io
import itertools
import json
import math
import random
import re
import sys
import time
import wave
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
import requests

from serve_app.openai_errors import OPENAI_PREFIX

#: Fields whose cost grows with their value: their maximum in the fuzzing copy of the document
#: (the generators may still step over it in negative mode; that is a valid request the server
#: serves or refuses). Minimums above these stay as documented.
NUMERIC_CAPS = {
    "num_inference_steps": 3, "n_timesteps": 3, "flow_matching_steps": 3, "diffusion_steps": 3,
    "inference_steps": 50, "audio_length_in_s": 1.5, "duration": 1.5, "target_len": 1.0,
}
#: Text fields: their longest generated value.
TEXT_CAPS = {"text": 40, "input": 40, "reference_text": 40, "lyrics": 40, "negative_prompt": 40, "tokens": 400,
             "target_singer": 40, "model": 40}
UPLOAD_FIELDS = ("audio", "reference_audio", "target_audio", "content_audio", "source_audio")
KEY_HEADER = "X-API-Key"

LEAK_PATTERNS = [
    (re.compile(r"Traceback \(most recent call last\)"), "a traceback"),
    (re.compile(r"File \"[^\"]+\", line \d+"), "a traceback frame"),
    (re.compile(r"(?:/[\w.+-]+)+\.py\b"), "a source file path"),
    (re.compile(r"(?:/(?:home|root|work|tmp|usr|opt|var|srv)(?:/[\w.+-]+)+)"), "a file path"),
    (re.compile(r"site-packages|dist-packages"), "a library path"),
    (re.compile(r"<[\w.]+ (?:object )?at 0x[0-9a-fA-F]+>"), "a Python repr"),
    (re.compile(r"<class '[\w.]+'>"), "a Python class repr"),
    (re.compile(r"\b[A-Z]\w*(?:Error|Exception)\((?:'|\")"), "an exception repr"),
    (re.compile(r"\b(?:tensor|array)\(\[|dtype=(?:torch|np)\."), "a tensor/array repr"),
]


def tiny_wav(seconds: float = 0.8, sample_rate: int = 16000, seed: int = 0) -> bytes:
    """A short 16-bit mono WAV of a tone with a little noise: decodable by every route."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def capped_document(doc: dict) -> dict:
    """The document with the costly fields' maximums lowered (a copy: responses are untouched)."""
    doc = json.loads(json.dumps(doc))
    schemas = doc.get("components", {}).get("schemas", {})
    # Request bodies only: a response model may have a field of the same name (a voice's duration).
    bodies = {media.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
              for operations in doc.get("paths", {}).values() for operation in operations.values()
              for media in operation.get("requestBody", {}).get("content", {}).values()}
    for schema in (schemas[name] for name in bodies if name in schemas):
        for name, prop in schema.get("properties", {}).items():
            for variant in [prop, *prop.get("anyOf", [])]:
                if name in NUMERIC_CAPS and variant.get("type") in ("integer", "number"):
                    cap = NUMERIC_CAPS[name]
                    low = variant.get("minimum", variant.get("exclusiveMinimum", -math.inf))
                    variant["maximum"] = max(cap, low if low != -math.inf else cap)
                    variant.pop("exclusiveMaximum", None)
                if name in TEXT_CAPS and variant.get("type") == "string" and variant.get("format") != "binary":
                    variant["maxLength"] = min(variant.get("maxLength", TEXT_CAPS[name]), TEXT_CAPS[name])
    return doc


def costly_defaults(doc: dict) -> dict[str, dict]:
    """Per path, the capped fields and their cap: set in valid cases that leave them out (the server's
    own defaults, e.g. 50 diffusion steps, would make those cases the slowest of the run)."""
    schemas = doc.get("components", {}).get("schemas", {})
    out: dict[str, dict] = {}
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                ref = media.get("schema", {}).get("$ref", "")
                props = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
                for name, prop in props.items():
                    if name in NUMERIC_CAPS:
                        variant = next((v for v in [prop, *prop.get("anyOf", [])] if "maximum" in v), None)
                        if variant is not None:
                            value = variant["maximum"]
                            out.setdefault(path, {})[name] = int(value) if variant.get("type") == "integer" else value
    return out


def steer_valid(body: dict, rng: random.Random) -> None:
    """Nudges a valid-mode body past the rules a schema cannot state, so that the model behind it runs:
    SVC's `key_shift` words and semitones, one reference rather than a target singer the checkpoint
    lacks, Noro's one-of `target_audio` / `reference_audio`."""
    if "key_shift" in body:
        body["key_shift"] = rng.choice(["autoshift", "reference", "0", "3", "-5", "12", "-12"])
    if "reference_audio" in body and "target_singer" in body:
        del body["target_singer"]
    if "target_audio" in body and "reference_audio" in body:
        del body[rng.choice(["target_audio", "reference_audio"])]


# ---------------------------------------------------------------------------------------------
# Response checks (besides schemathesis' conformance checks)


def header(response, name: str) -> str:
    """A response header (schemathesis' responses hold lists of values)."""
    for key, value in response.headers.items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) else value
    return ""


def check_no_server_error(response) -> str | None:
    if response.status_code >= 500 and response.status_code != 503:
        return f"server error {response.status_code}"
    return None


def check_error_body(response) -> str | None:
    """Every error is JSON {"detail": ...}: a string, or FastAPI's validation list for 422; on the
    OpenAI-compatible routes (/v1/...), OpenAI's {"error": {"message", "type", "param", "code"}}."""
    if response.status_code < 400:
        return None
    ctype = header(response, "content-type")
    if not ctype.startswith("application/json"):
        return f"error body is {ctype or 'untyped'}, not JSON"
    try:
        body = json.loads(response.content)
    except ValueError:
        return "error body is not valid JSON"
    if urlsplit(str(response.request.url)).path.startswith(OPENAI_PREFIX):
        error = body.get("error") if isinstance(body, dict) else None
        if set(body) != {"error"} or not isinstance(error, dict) or set(error) != {"message", "type", "param", "code"}:
            return "error body is not OpenAI's {\"error\": {message, type, param, code}}"
        if not isinstance(error["message"], str) or not error["message"].strip():
            return "OpenAI error message is not a non-empty string"
        return None
    if not isinstance(body, dict) or set(body) != {"detail"}:
        return f"error body is not {{\"detail\": ...}}: keys {sorted(body) if isinstance(body, dict) else type(body).__name__}"
    detail = body["detail"]
    if response.status_code == 422:
        if not (isinstance(detail, list) and all(isinstance(e, dict) and {"loc", "msg", "type"} <= set(e)
                                                 for e in detail)):
            return "422 detail is not FastAPI's list of {loc, msg, type}"
    elif not isinstance(detail, str) or not detail.strip():
        return "error detail is not a non-empty string"
    return None


def check_no_leak(response) -> str | None:
    ctype = header(response, "content-type")
    if ctype.startswith("audio/"):
        return None
    text = response.content.decode("utf-8", "replace")
    for pattern, what in LEAK_PATTERNS:
        found = pattern.search(text)
        if found:
            return f"body shows {what}: {found.group(0)[:120]!r}"
    return None


def check_rate_limited(response) -> str | None:
    if response.status_code == 429 and not header(response, "retry-after").isdigit():
        return "429 without a numeric Retry-After"
    return None


OWN_CHECKS = (check_no_server_error, check_error_body, check_no_leak, check_rate_limited)


# ---------------------------------------------------------------------------------------------
# Keys


class KeyPool:
    """Hands out keys round-robin, never one past `per_key` requests (the hourly limit is 100)."""

    def __init__(self, keys: list[str], per_key: int = 95):
        self.keys = list(keys)
        self.per_key = per_key
        self.used = collections.Counter()
        self._cycle = itertools.cycle(range(len(self.keys)))

    def next(self) -> str:
        for _ in range(len(self.keys)):
            key = self.keys[next(self._cycle)]
            if self.used[key] < self.per_key:
                self.used[key] += 1
                return key
        # Every key spent: keep using them (429 with Retry-After passes the checks).
        key = self.keys[next(self._cycle)]
        self.used[key] += 1
        return key


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class Report:
    requests: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    per_operation: dict = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    failures: list = field(default_factory=list)
    model_runs: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"{self.requests} requests in {self.seconds:.0f} s, {len(self.failures)} failures, "
                 f"{self.model_runs} with a valid WAV upload",
                 "status counts: " + ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))]
        for op, counts in sorted(self.per_operation.items()):
            lines.append(f"  {op}: " + ", ".join(f"{s}: {n}" for s, n in sorted(counts.items())))
        for failure in self.failures:
            lines.append("FAILURE " + failure)
        return "\n".join(lines)


def _describe(case, key_variant: str, wav: bool) -> str:
    body = case.body
    if isinstance(body, dict):
        shown = {k: (f"<{len(v)} bytes>" if isinstance(v, (bytes, bytearray)) else
                     (v[:60] + "..." if isinstance(v, str) and len(v) > 60 else v)) for k, v in body.items()}
    else:
        shown = body if body is None or not isinstance(body, (bytes, str)) else f"<{len(body)} bytes/chars>"
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != KEY_HEADER.lower()}
    return (f"{case.method} {case.formatted_path} key={key_variant}{' wav' if wav else ''} "
            f"headers={headers} query={case.query} body={shown!r}"[:700])


def run_fuzz(base_url: str, keys: list[str], total: int, *, seed: int = 0, wav_share: float = 0.15,
             timeout: float = 120.0, progress=None, per_key: int = 95, only: str | None = None) -> Report:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance, response_schema_conformance, status_code_conformance,
    )

    base_url = base_url.rstrip("/")
    doc = requests.get(base_url + "/api/openapi.json", timeout=30).json()
    capped = capped_document(doc)
    schema = schemathesis.openapi.from_dict(capped)
    defaults = costly_defaults(capped)
    operations = [result.ok() for result in schema.get_all_operations()]
    if only:
        operations = [op for op in operations if only in op.path]
    pool = KeyPool(keys, per_key=per_key)
    report = Report()
    session = requests.Session()
    wav_bytes = tiny_wav()
    started = time.monotonic()
    conformance = [status_code_conformance, content_type_conformance, response_schema_conformance]

    def one_request(case, mode: str, key_variant: str, wrong_key: str, use_wav: bool):
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != KEY_HEADER.lower()}
        case.headers = headers
        if key_variant == "valid":
            send = {KEY_HEADER: pool.next()}
        elif key_variant == "wrong":
            send = {KEY_HEADER: wrong_key}
        else:
            send = {}
        if use_wav and isinstance(case.body, dict):
            for name in UPLOAD_FIELDS:
                if name in case.body:
                    case.body[name] = wav_bytes
        label = f"{case.method} {case.operation.path}"
        report.requests += 1
        report.model_runs += bool(use_wav)
        where = f"[{mode}] {_describe(case, key_variant, use_wav)}"
        try:
            response = case.call(base_url=base_url, session=session, headers=send, timeout=timeout)
        except Exception as exc:   # no response at all
            report.statuses["no response"] += 1
            report.failures.append(f"{label}: no response ({type(exc).__name__}: {str(exc)[:200]}) {where}")
            return
        sent_key = response.request.headers.get(KEY_HEADER)   # schemathesis may drop it (a missing-header case)
        key_variant = "none" if sent_key is None else "valid" if sent_key in pool.keys else "wrong"
        where = f"[{mode}] {_describe(case, key_variant, use_wav)}"
        report.statuses[response.status_code] += 1
        report.per_operation[label][response.status_code] += 1
        problems = [p for p in (check(response) for check in OWN_CHECKS) if p]
        try:
            case.validate_response(response, checks=conformance)
        except (AssertionError, BaseExceptionGroup) as exc:
            for failure in getattr(exc, "exceptions", None) or [exc]:
                title = getattr(failure, "title", type(failure).__name__)
                message = " / ".join(line.strip() for line in str(getattr(failure, "message", failure)).splitlines()
                                     if line.strip())
                problems.append(f"{title}: {message}"[:400])
        except Exception as exc:
            problems.append(f"{type(exc).__name__}: {str(exc)[:300]}")
        if problems:
            snippet = response.content[:300].decode("utf-8", "replace") if not header(
                response, "content-type").startswith("audio/") else f"<{len(response.content)} bytes of audio>"
            report.failures.append(f"{label} -> {response.status_code}: {'; '.join(problems)} {where} "
                                   f"response={snippet!r}")
        if progress is not None:
            progress(report)

    # Each generated case goes with a valid key, and half of them again without a key or with a wrong one
    # (generation costs more than a refused request).
    coins = random.Random(seed)
    key_variants = st.sampled_from(["valid", "valid", "none", "wrong"])
    wrong_keys = st.from_regex(r"\A[A-Za-z0-9._~+/=-]{1,80}\Z")

    def run_chunk(operation, mode: GenerationMode, n: int, chunk_seed: int) -> int:
        before = report.requests
        strategy = operation.as_strategy(generation_mode=mode)

        @hseed(chunk_seed)
        @settings(max_examples=n, phases=[Phase.generate], database=None, deadline=None, derandomize=False,
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
        @given(case=strategy, key_variant=key_variants, wrong_key=wrong_keys)
        def test(case, key_variant, wrong_key):
            coin = coins.random()   # not drawn by hypothesis, which favours the bounds (0.0) and would skew the share
            if report.requests >= total:
                return
            has_uploads = isinstance(case.body, dict) and any(name in case.body for name in UPLOAD_FIELDS)
            use_wav = has_uploads and mode == GenerationMode.POSITIVE and coin < wav_share
            if mode == GenerationMode.POSITIVE and isinstance(case.body, dict) and coins.random() < 0.8:
                for name, value in defaults.get(operation.path, {}).items():
                    case.body.setdefault(name, value)
                steer_valid(case.body, coins)
            one_request(case, mode.value, "valid", wrong_key, use_wav)
            if key_variant != "valid" and report.requests < total:
                one_request(case, mode.value, key_variant, wrong_key, use_wav)

        try:
            test()
        except Unsatisfiable:   # nothing to generate in this mode (a negative case of an operation without inputs)
            pass
        return report.requests - before

    remaining_ops = list(operations)
    chunk = 12
    round_no = 0
    while report.requests < total and remaining_ops:
        for operation in list(remaining_ops):
            if report.requests >= total:
                break
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                done = run_chunk(operation, mode, chunk, seed * 100003 + round_no * 1009 + len(remaining_ops))
                if done < chunk // 3:   # hypothesis ran out of distinct examples for this one
                    if mode == GenerationMode.NEGATIVE and operation in remaining_ops:
                        remaining_ops.remove(operation)
        round_no += 1
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="how many requests to send")
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", action="append", required=True, help="an API key (repeat for several)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wav-share", type=float, default=0.15,
                        help="share of valid-mode requests whose uploads are a short valid WAV (the models run)")
    parser.add_argument("--only", help="fuzz only the operations whose path contains this")
    args = parser.parse_args(argv)

    last = [0.0]

    def progress(report: Report):
        if time.monotonic() - last[0] > 10:
            last[0] = time.monotonic()
            print(f"... {report.requests} requests, {len(report.failures)} failures", file=sys.stderr, flush=True)

    report = run_fuzz(args.base_url, args.key, args.requests, seed=args.seed, wav_share=args.wav_share,
                      progress=progress, only=args.only)
    print(report.summary())
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())

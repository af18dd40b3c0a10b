"""Validation of codec token JSON sent to the decode routes.

Tokens arrive as a JSON form field; everything about them is checked before a model sees them:
shape, integer type, each codebook's range, and length. Violations raise `InvalidTokens` (400)
with a detail that says which rule and where.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np


class InvalidTokens(ValueError):
    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class DualCodecSpec:
    """One DualCodec variant: row 0 semantic codes, rows 1.. acoustic residual codes."""

    name: str
    semantic_size: int
    acoustic_size: int
    max_quantizers: int
    frame_rate: float


DUALCODEC_SPECS = {
    "12hz_v1": DualCodecSpec("12hz_v1", 16384, 4096, 8, 12.5),
    "25hz_v1": DualCodecSpec("25hz_v1", 16384, 1024, 12, 25.0),
}

FACODEC_CODEBOOK_SIZE = 1024
FACODEC_ROWS = {"prosody_tokens": 1, "content_tokens": 2, "acoustic_tokens": 3}
FACODEC_TIMBRE_DIM = 256
FACODEC_FRAME_RATE = 80.0


def _load(text: str):
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise InvalidTokens("tokens: not valid JSON") from None


def _int_matrix(value, field: str) -> np.ndarray:
    """A non-empty rectangular list of lists of integers -> int64 [rows, frames]."""
    if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
        raise InvalidTokens(f"{field}: must be a non-empty list of codebooks, each a list of integers")
    lengths = {len(r) for r in value}
    if len(lengths) != 1:
        raise InvalidTokens(f"{field}: codebooks have different lengths {sorted(lengths)}")
    if 0 in lengths:
        raise InvalidTokens(f"{field}: codebooks are empty")
    for i, row in enumerate(value):
        for j, x in enumerate(row):
            if isinstance(x, bool) or not isinstance(x, int):
                raise InvalidTokens(f"{field}: codebook {i}, frame {j} is not an integer")
    return np.asarray(value, dtype=np.int64)


def _check_range(codes: np.ndarray, size: int, field: str, row: int) -> None:
    bad = np.flatnonzero((codes < 0) | (codes >= size))
    if bad.size:
        raise InvalidTokens(f"{field}: codebook {row}, frame {int(bad[0])} is {int(codes[bad[0]])}, "
                            f"outside 0..{size - 1}")


def parse_dualcodec_tokens(text: str, model: str | None, max_seconds: float,
                           sizes: dict[str, dict] | None = None) -> tuple[np.ndarray, str]:
    """`tokens` (the array, or the whole encode response) -> (int64 [n_q, frames], model name).
    ``sizes``: the deployed models' codebook sizes by name (``semantic_codebook_size``,
    ``acoustic_codebook_size``); default the official ones."""
    value = _load(text)
    if isinstance(value, dict):
        if "tokens" not in value:
            raise InvalidTokens("tokens: an object must hold a 'tokens' array (the encode response)")
        declared = value.get("model")
        if model is not None and declared is not None and declared != model:
            raise InvalidTokens(f"tokens: made by model {declared!r} but model={model!r} was asked for")
        model = model or declared
        value = value["tokens"]
    model = model or "12hz_v1"
    spec = DUALCODEC_SPECS.get(model)
    if spec is None:
        raise InvalidTokens(f"model: must be one of {', '.join(DUALCODEC_SPECS)}")
    if sizes is not None and model in sizes:
        deployed = sizes[model]
        spec = DualCodecSpec(model, int(deployed["semantic_codebook_size"]), int(deployed["acoustic_codebook_size"]),
                             spec.max_quantizers, spec.frame_rate)
    codes = _int_matrix(value, "tokens")
    if codes.shape[0] > spec.max_quantizers:
        raise InvalidTokens(f"tokens: {codes.shape[0]} codebooks, {model} has at most {spec.max_quantizers}")
    max_frames = math.floor(max_seconds * spec.frame_rate)
    if codes.shape[1] > max_frames:
        raise InvalidTokens(f"tokens: {codes.shape[1]} frames, at most {max_frames} ({max_seconds:.0f} s)")
    _check_range(codes[0], spec.semantic_size, "tokens", 0)
    for row in range(1, codes.shape[0]):
        _check_range(codes[row], spec.acoustic_size, "tokens", row)
    return codes, model


def parse_facodec_tokens(text: str, max_seconds: float, *, codebook_size: int = FACODEC_CODEBOOK_SIZE,
                         timbre_dim: int = FACODEC_TIMBRE_DIM) -> dict[str, np.ndarray]:
    """The encode response object -> prosody [1, T], content [2, T], acoustic [3, T] (int64) and
    timbre [256] (float32). ``codebook_size`` / ``timbre_dim``: those of the deployed model (the
    official values by default)."""
    value = _load(text)
    if not isinstance(value, dict):
        raise InvalidTokens("tokens: must be the JSON object returned by /api/codec/facodec/encode")
    out: dict[str, np.ndarray] = {}
    frames = None
    max_frames = math.floor(max_seconds * FACODEC_FRAME_RATE)
    for field, rows in FACODEC_ROWS.items():
        if field not in value:
            raise InvalidTokens(f"tokens: missing {field}")
        codes = _int_matrix(value[field], field)
        if codes.shape[0] != rows:
            raise InvalidTokens(f"{field}: {codes.shape[0]} codebooks, expected {rows}")
        if frames is not None and codes.shape[1] != frames:
            raise InvalidTokens(f"{field}: {codes.shape[1]} frames, the other token fields have {frames}")
        frames = codes.shape[1]
        if frames > max_frames:
            raise InvalidTokens(f"{field}: {frames} frames, at most {max_frames} ({max_seconds:.0f} s)")
        for row in range(rows):
            _check_range(codes[row], codebook_size, field, row)
        out[field] = codes
    timbre = value.get("timbre_tokens")
    if (not isinstance(timbre, list) or len(timbre) != timbre_dim
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in timbre)):
        raise InvalidTokens(f"timbre_tokens: must be a list of {timbre_dim} numbers (the speaker embedding)")
    embedding = np.asarray(timbre, dtype=np.float32)
    if not np.isfinite(embedding).all():
        raise InvalidTokens("timbre_tokens: holds non-finite values")
    out["timbre_tokens"] = embedding
    return out

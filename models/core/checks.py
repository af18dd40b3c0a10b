"""Checks of a generation request's plain values and recordings, shared by the model families'
orchestrators. Each raises the error class its caller names, so a family keeps its own input-error
type (which its deployments turn into 400s)."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch


def finite(value, name: str, error: type[Exception], *, positive: bool = False,
           below: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise error(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if value < 0 or (positive and value == 0):
        raise error(f"{name} must be {'positive' if positive else 'non-negative'}, got {value:g}")
    if below is not None and value > below:
        raise error(f"{name} must be at most {below:g}, got {value:g}")
    return value


def integer(value, name: str, error: type[Exception], low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < low \
            or (high is not None and int(value) > high):
        bounds = f"in {low}..{high}" if high is not None else f">= {low}"
        raise error(f"{name} must be an integer {bounds}, got {value!r}")
    return int(value)


def seed(value, error: type[Exception]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= int(value) < 2**63:
        raise error(f"seed must be an integer in [0, 2**63), got {value!r}")
    return int(value)


def mono(wav, what: str, error: type[Exception], *, missing: type[Exception] | None = None,
         missing_text: str = "is missing") -> np.ndarray:
    """Mono float32 samples of a recording (integer PCM scaled to [-1, 1]); ``error`` when it is not
    one channel of finite samples, ``missing`` (default ``error``) when there is none."""
    if wav is None:
        raise (missing or error)(f"{what} {missing_text}")
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().numpy()
    arr = np.asarray(wav)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise error(f"{what} must be mono audio (one channel), got an array of shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    elif not np.issubdtype(arr.dtype, np.floating):
        raise error(f"{what} must hold audio samples, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise error(f"{what} contains NaN or infinite samples")
    return arr

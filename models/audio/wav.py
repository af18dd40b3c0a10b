"""Writing WAV bytes."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

__all__ = ["encode_wav"]

_WAV_SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")


def encode_wav(samples: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> bytes:
    """Mono WAV bytes for ``samples`` (1-D, or 2-D with a single channel/row).

    Non-finite samples become 0 (NaN) or full scale (infinity); for PCM subtypes the signal is also
    clipped to [-1, 1].  ``FLOAT`` keeps values beyond full scale.
    """
    if subtype not in _WAV_SUBTYPES:
        raise ValueError(f"subtype must be one of {_WAV_SUBTYPES}")
    if int(sample_rate) <= 0:
        raise ValueError("sample_rate must be positive")
    x = np.asarray(samples)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise ValueError("encode_wav writes mono audio: expected a 1-D array")
    x = np.nan_to_num(x.astype(np.float32, copy=True), nan=0.0, posinf=1.0, neginf=-1.0)
    if subtype != "FLOAT":
        np.clip(x, -1.0, 1.0, out=x)
    buf = io.BytesIO()
    sf.write(buf, x, int(sample_rate), subtype=subtype, format="WAV")
    return buf.getvalue()

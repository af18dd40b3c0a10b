"""Sample-rate conversion: torchaudio's windowed-sinc resampler with its defaults, everywhere."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["resample", "to_rate"]


def resample(wav: torch.Tensor, from_sr: int, to_sr: int) -> torch.Tensor:
    """``wav`` ``[..., L]`` at ``from_sr`` -> ``[..., ceil(L * to_sr / from_sr)]`` at ``to_sr``
    (``torchaudio.functional.resample``, default filter)."""
    import torchaudio.functional as AF

    return AF.resample(wav, int(from_sr), int(to_sr))


def to_rate(wav: np.ndarray, from_sr: int, to_sr: int) -> np.ndarray:
    """Mono samples at ``from_sr`` -> contiguous float32 ``[L']`` at ``to_sr``; at equal rates the
    samples themselves (as contiguous float32)."""
    wav = np.ascontiguousarray(wav, dtype=np.float32).reshape(-1)
    if int(from_sr) == int(to_sr):
        return wav
    return resample(torch.from_numpy(wav), from_sr, to_sr).numpy()

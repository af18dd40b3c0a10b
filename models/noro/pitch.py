"""Noro's pitch input: WORLD F0 (pyworld ``dio`` + ``stonemask``), gaps filled, normalised per utterance.

As ``noro_inference.py`` computes it from the padded source (``utils/f0.py``):

1. ``dio(wave as float64, rate, f0_floor=f0_min, f0_ceil=f0_max, channels_in_octave=2,
   frame_period=1000 * hop / rate)`` then ``stonemask`` -> ``N / hop + 1`` frames, Hz, 0 = unvoiced;
2. unvoiced frames replaced by linear interpolation over the voiced ones, the ends held
   (``np.interp``); nothing changes when no frame is voiced;
3. the first ``N // hop`` frames, as float32;
4. ``(f - mean) / (std + 1e-6)`` over the utterance, with the unbiased std (all zeros stay zeros).

pyworld is imported when first needed; without it :class:`PitchUnavailable` says so.
"""

from __future__ import annotations

import numpy as np
import torch

from models.noro.configs import F0Config

__all__ = ["NORMALISE_EPS", "PitchUnavailable", "fill_unvoiced", "normalise_pitch", "source_pitch", "world_f0"]

#: ``get_f0_features_using_dio`` asks dio for 2 channels per octave (pyworld's default is 2 too).
CHANNELS_IN_OCTAVE = 2
NORMALISE_EPS = 1e-6


class PitchUnavailable(RuntimeError):
    """pyworld (WORLD's dio / stonemask) is not installed."""


def world_f0(wave: np.ndarray, cfg: F0Config) -> np.ndarray:
    """Raw F0 in Hz (float64, ``len // hop + 1`` frames, 0 = unvoiced) of a mono waveform."""
    try:
        import pyworld
    except ImportError as exc:  # an optional dependency: only Noro needs WORLD
        raise PitchUnavailable("Noro's pitch needs pyworld (WORLD dio + stonemask): pip install pyworld") from exc
    x = np.ascontiguousarray(np.asarray(wave).reshape(-1), dtype=np.float64)
    f0, times = pyworld.dio(x, cfg.sample_rate, f0_floor=cfg.f0_min, f0_ceil=cfg.f0_max,
                            channels_in_octave=CHANNELS_IN_OCTAVE, frame_period=cfg.frame_period_ms)
    return pyworld.stonemask(x, f0, times, cfg.sample_rate)


def fill_unvoiced(f0: np.ndarray) -> np.ndarray:
    """Unvoiced (0 Hz) frames linearly interpolated from the voiced ones, ends held; a copy."""
    f0 = np.array(f0, copy=True)
    unvoiced = f0 == 0
    if unvoiced.all():
        return f0
    f0[unvoiced] = np.interp(np.flatnonzero(unvoiced), np.flatnonzero(~unvoiced), f0[~unvoiced])
    return f0


def normalise_pitch(f0: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` -> ``(f - mean) / (std + 1e-6)`` per row (unbiased std, as ``torch.std``'s default)."""
    return (f0 - f0.mean(dim=1, keepdim=True)) / (f0.std(dim=1, keepdim=True) + NORMALISE_EPS)


def source_pitch(wave: np.ndarray, cfg: F0Config) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """The model's pitch input for a padded source: ``(pitch [1, N // hop] float32, raw F0, filled F0)``;
    the last two (float64 raw, float32 filled) for inspection."""
    wave = np.asarray(wave).reshape(-1)
    raw = world_f0(wave, cfg)
    filled = fill_unvoiced(raw)[: wave.shape[0] // cfg.hop].astype(np.float32)
    return normalise_pitch(torch.from_numpy(filled)[None]), raw, filled

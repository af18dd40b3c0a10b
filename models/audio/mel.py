"""The HiFi-GAN / BigVGAN log-mel spectrogram.

Every vocoder we serve (NVIDIA BigVGAN v2, Amphion HiFi-GAN / NSF-HiFiGAN / BigVGAN) was trained on
the same mel definition, so one implementation serves all of them:

1. reflect-pad (n_fft - hop) // 2 samples on both sides (not torch.stft's ``center=True``: that pads
   n_fft // 2 and would shift every frame by half a hop relative to what the vocoders were trained on);
2. STFT with a periodic Hann window, ``center=False``;
3. magnitude ``sqrt(re^2 + im^2 + eps)``, ``eps`` = ``MelConfig.magnitude_eps`` (1e-9 by default; the epsilon is
   part of the recipe, it sets the floor of silent bins);
4. librosa's default mel basis: Slaney mel scale with Slaney (area) normalisation;
5. natural log of ``clamp(mel, min=1e-5)``.

With that padding the frame count is ``L // hop`` for the usual n_fft / hop pairs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Natural-log floor of the recipe: ln(1e-5). Vocoders see this value in silence, so it is also the
# neutral value to pad mel batches with.
LOG_MEL_FLOOR = math.log(1e-5)


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 24000
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 100
    fmin: float = 0.0
    # None means Nyquist (NVIDIA's configs write ``"fmax": null``; librosa treats None as sr / 2).
    fmax: float | None = None
    # Added to re^2 + im^2 before the square root: it sets the floor of silent bins, so it is part of
    # each recipe (1e-9 for the vocoders'; Noro's reference mel uses 1e-6).
    magnitude_eps: float = 1e-9

    @property
    def fmax_hz(self) -> float:
        return float(self.sample_rate) / 2.0 if self.fmax is None else float(self.fmax)

    @property
    def pad(self) -> int:
        return (self.n_fft - self.hop_length) // 2

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a waveform of ``num_samples`` samples (matches torch.stft, center=False)."""
        return (num_samples + 2 * self.pad - self.n_fft) // self.hop_length + 1


# ---------------------------------------------------------------------------------------------
# Slaney mel filterbank (librosa.filters.mel defaults: htk=False, norm="slaney")
# ---------------------------------------------------------------------------------------------

# Slaney's scale is linear below 1 kHz (200/3 Hz per mel) and logarithmic above it.
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _F_SP
    with np.errstate(divide="ignore"):
        logpart = _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-300) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, logpart, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _F_SP
    logpart = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, logpart, linear)


def slaney_mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular mel filters ``[n_mels, n_fft // 2 + 1]`` (float32), numerically librosa's default.

    Computed in float64; like librosa the triangles are stored in float32 before the area
    normalisation is applied, so the result matches librosa to the last bit or so.
    """
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_points = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2)
    hz_points = _mel_to_hz(mel_points)

    widths = np.diff(hz_points)
    ramps = hz_points[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)

    # Slaney normalisation: each triangle gets unit area in Hz.
    area_norm = 2.0 / (hz_points[2 : n_mels + 2] - hz_points[:n_mels])
    weights = (weights * area_norm[:, None]).astype(np.float32)
    return weights


@functools.lru_cache(maxsize=32)
def _stft_resources(cfg: MelConfig, device: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Window and filterbank for one (config, device, dtype): built once, reused by every call."""
    window = torch.hann_window(cfg.win_length, periodic=True, dtype=dtype, device=device)
    basis = slaney_mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
    return window, torch.from_numpy(basis).to(device=device, dtype=dtype)


def log_mel_spectrogram(wave: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """``wave`` ``[B, L]`` or ``[L]`` (float, roughly in [-1, 1]) -> natural-log mel ``[B, n_mels, frames]``.

    The input is neither clipped nor normalised, as in the reference recipe.
    """
    if not torch.is_floating_point(wave):
        raise TypeError(f"expected a floating-point waveform, got {wave.dtype}")
    x = wave.unsqueeze(0) if wave.dim() == 1 else wave
    if x.dim() != 2:
        raise ValueError(f"expected a waveform of shape [L] or [B, L], got {tuple(wave.shape)}")
    pad = cfg.pad
    if x.shape[-1] <= pad:
        # Reflect padding needs more samples than it mirrors; the reference fails here too.
        raise ValueError(
            f"waveform too short for the mel front end: {x.shape[-1]} samples, need more than {pad}"
        )
    x = F.pad(x.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    window, basis = _stft_resources(cfg, str(x.device), x.dtype)
    spec = torch.stft(
        x,
        cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=window,
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    magnitude = torch.sqrt(spec.real.square() + spec.imag.square() + cfg.magnitude_eps)
    mel = torch.matmul(basis, magnitude)
    return torch.log(torch.clamp(mel, min=1e-5))

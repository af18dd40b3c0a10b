"""Vevo's 24 kHz mel front end and its normalisation (Vevo and Vevo1.5 alike).

The reference (``models/codec/melvqgan/melspec.py`` ``MelSpectrogram``, built from the ``preprocess``
block of ``Vocoder.json``) is exactly the shared HiFi-GAN recipe of :mod:`models.audio.mel` (reflect-pad
``(n_fft - hop) / 2`` on both sides, periodic Hann, ``center=False``, ``sqrt(|X|^2 + 1e-9)``, librosa's
Slaney mel basis, ``log(clamp(., 1e-5))``), so that module computes it. What Vevo adds is the
normalisation of ``VevoInferencePipeline.extract_mel_feature``: ``(log_mel - mel_mean) / sqrt(mel_var)``
with the official ``-4.92`` / ``8.14``, transposed to ``[B, T, n_mels]``. That normalised mel is what the
flow-matching model's prompt uses and what the vocoder consumes (it never sees a raw log-mel).

Officially: 24 kHz, n_fft = win = 1920, hop 480 (50 frames/s), 128 mels, 0-12 kHz; ``N`` samples give
``(N + 1440 - 1920) // 480 + 1`` frames (``N // 480`` when ``N`` is a multiple of the hop).
"""

from __future__ import annotations

import numpy as np
import torch

from models.audio.mel import log_mel_spectrogram, slaney_mel_filterbank
from models.vevo.configs import VevoMelConfig, official_mel_config

__all__ = ["VevoMel"]


class VevoMel:
    """The mel front end for one :class:`VevoMelConfig` (no weights; buffers are cached per device)."""

    def __init__(self, config: VevoMelConfig | None = None) -> None:
        self.config = official_mel_config() if config is None else config

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_size(self) -> int:
        return self.config.hop_size

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def min_samples(self) -> int:
        """Shortest waveform the reflect padding accepts (one more sample than it mirrors)."""
        return self.config.mel.pad + 1

    def num_frames(self, num_samples: int) -> int:
        return max(0, self.config.mel.num_frames(num_samples))

    def frame_lengths(self, sample_lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames per item of a right-padded batch with ``sample_lengths`` samples each."""
        mel = self.config.mel
        return torch.div(sample_lengths + 2 * mel.pad - mel.n_fft, mel.hop_length, rounding_mode="floor") + 1

    def filterbank(self) -> np.ndarray:
        """The mel basis ``[n_mels, n_fft // 2 + 1]`` (float32), librosa's ``filters.mel`` defaults."""
        c = self.config
        return slaney_mel_filterbank(c.sample_rate, c.n_fft, c.num_mels, float(c.fmin), float(c.fmax))

    def raw(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform ``[B, N]`` (or ``[N]``) at :attr:`sample_rate` -> natural-log mel ``[B, n_mels, T]``
        (``MelSpectrogram.forward`` of the reference)."""
        return log_mel_spectrogram(wav, self.config.mel)

    def normalise(self, raw_log_mel: torch.Tensor) -> torch.Tensor:
        """Raw log-mel ``[B, n_mels, T]`` -> normalised mel ``[B, T, n_mels]``."""
        return (raw_log_mel.transpose(1, 2) - self.config.mel_mean) / self.config.mel_std

    def denormalise(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised mel ``[B, T, n_mels]`` -> raw log-mel ``[B, n_mels, T]`` (inverse of :meth:`normalise`)."""
        return (mel * self.config.mel_std + self.config.mel_mean).transpose(1, 2)

    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform ``[B, N]`` -> the normalised mel ``[B, T, n_mels]`` that the FM prompt and the vocoder use
        (``extract_mel_feature``)."""
        return self.normalise(self.raw(wav))

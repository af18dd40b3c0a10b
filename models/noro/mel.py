"""Noro's reference mel (Amphion's ``utils/mel.py::mel_spectrogram_torch``) and its padding rule.

The recipe of :mod:`models.audio.mel` (reflect-pad ``(n_fft - hop) // 2``, periodic Hann, ``center=False``,
librosa's Slaney mel basis, ``ln(clamp(., 1e-5))``), run by its ``log_mel_spectrogram`` with two settings
that change the numbers:

* the magnitude is ``sqrt(re^2 + im^2 + 1e-6)``: **1e-6**, where the vocoders' mel has 1e-9 (it sets
  the floor of silent bins, so a port with 1e-9 gives a different reference embedding);
* the window is 800 samples inside a 1024-point FFT (``torch.stft`` centres it with zeros).

The model was trained on this mel for its reference input, and generates the same mel as output
(16 kHz, hop 200, 80 bands, 0-8 kHz), which is what Noro's vocoder takes.
"""

from __future__ import annotations

import numpy as np
import torch

from models.audio.mel import MelConfig, log_mel_spectrogram

__all__ = ["MAGNITUDE_EPS", "NORO_MEL", "REFERENCE_MULTIPLE", "pad_reference", "reference_log_mel"]

#: The top-level mel keys of the official config (``mel_spectrogram_torch`` reads those).
MAGNITUDE_EPS = 1e-6
NORO_MEL = MelConfig(sample_rate=16000, n_fft=1024, hop_length=200, win_length=800, n_mels=80, fmin=0.0,
                     fmax=8000.0, magnitude_eps=MAGNITUDE_EPS)
#: ``noro_inference.py`` right-pads the reference to a multiple of the hop.
REFERENCE_MULTIPLE = 200


def pad_reference(wave: np.ndarray, multiple: int = REFERENCE_MULTIPLE) -> np.ndarray:
    """Zeros at the end up to the next multiple of ``multiple``; always adds 1..multiple samples (a whole
    ``multiple`` when the length already is one), as ``np.pad(w, (0, m - len(w) % m))`` does."""
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    return np.pad(wave, (0, multiple - wave.shape[0] % multiple))


def reference_log_mel(wave: torch.Tensor, cfg: MelConfig = NORO_MEL) -> torch.Tensor:
    """``wave`` ``[L]`` or ``[B, L]`` -> natural-log mel ``[B, frames, n_mels]`` (frames first, as the
    model takes it); ``L // hop`` frames when ``L`` is a multiple of the hop."""
    return log_mel_spectrogram(wave, cfg).transpose(1, 2)

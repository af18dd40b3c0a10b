"""DualCodec's semantic input: w2v-bert-2.0 layer-17 features, normalised with DualCodec's own stats
and average-pooled to the codec's frame rate.

:func:`resample_for_w2v_bert` is the reference's 24 -> 16 kHz resampling; :class:`SemanticNormPool`
normalises ``hidden_states[17]`` ``[B, F, 1024]`` and pools it to ``[B, 1024, F // factor]``;
:func:`frame_counts` gives the semantic and DAC frame counts of a waveform length (encoding needs
``0 <= T_dac - T <= 2``). The reference's four steps: ``models/dualcodec/README.md``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.audio.resample import resample
from models.core.checkpoints import CheckpointError
from models.dualcodec.configs import SEMANTIC_DIM, DualCodecConfig

__all__ = [
    "CODEC_SAMPLE_RATE",
    "W2V_BERT_LAYER",
    "W2V_BERT_SAMPLE_RATE",
    "SemanticNormPool",
    "frame_counts",
    "load_semantic_stats",
    "pool_semantic_features",
    "resample_for_w2v_bert",
    "tiny_semantic_stats",
    "w2v_bert_frames",
]

CODEC_SAMPLE_RATE = 24000
W2V_BERT_SAMPLE_RATE = 16000
#: ``hidden_states`` index DualCodec reads (``layer_idx 15 + 2`` in the reference).
W2V_BERT_LAYER = 17
# SeamlessM4TFeatureExtractor: 25 ms windows every 10 ms, frames stacked in pairs (padded to even).
_FBANK_WINDOW, _FBANK_HOP, _FBANK_STACK = 400, 160, 2


def resample_for_w2v_bert(audio_24k: torch.Tensor) -> torch.Tensor:
    """The reference's 24 kHz -> 16 kHz resampling for the w2v-bert branch (``[..., L]`` -> ``[..., ceil(2L/3)]``)."""
    return resample(audio_24k, CODEC_SAMPLE_RATE, W2V_BERT_SAMPLE_RATE)


def w2v_bert_frames(num_samples_24k: int) -> int:
    """w2v-bert feature frames (50 Hz) for a 24 kHz waveform of ``num_samples_24k`` samples."""
    samples_16k = math.ceil(num_samples_24k * W2V_BERT_SAMPLE_RATE / CODEC_SAMPLE_RATE)
    if samples_16k < _FBANK_WINDOW:
        return 0
    return math.ceil((1 + (samples_16k - _FBANK_WINDOW) // _FBANK_HOP) / _FBANK_STACK)


def frame_counts(num_samples_24k: int, config: DualCodecConfig) -> tuple[int, int]:
    """``(T, T_dac)``: semantic frames after pooling and DAC latent frames for a 24 kHz waveform.
    Codes have ``T`` frames; :meth:`DualCodec.encode` needs ``0 <= T_dac - T <= 2`` and ``T >= 1``."""
    return (w2v_bert_frames(num_samples_24k) // config.semantic_downsample_factor,
            math.ceil(num_samples_24k / config.hop_length))


def load_semantic_stats(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, var)`` float32 ``[1024]`` from ``w2vbert2_mean_var_stats_emilia.pt`` (tensors only:
    ``torch.load(weights_only=True)``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"DualCodec semantic stats not found: {path}")
    try:
        stats = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a foreign, truncated or code-carrying pickle
        raise CheckpointError(f"cannot read {path} as DualCodec's w2v-bert stats: {exc}") from exc
    if not isinstance(stats, dict) or not all(isinstance(stats.get(k), torch.Tensor) for k in ("mean", "var")):
        raise CheckpointError(f"{path}: expected a dict with 'mean' and 'var' tensors")
    mean, var = stats["mean"].float().flatten(), stats["var"].float().flatten()
    if mean.shape != (SEMANTIC_DIM,) or var.shape != (SEMANTIC_DIM,):
        raise CheckpointError(
            f"{path}: 'mean' {tuple(mean.shape)} and 'var' {tuple(var.shape)} must both be [{SEMANTIC_DIM}]"
        )
    return mean, var


def tiny_semantic_stats(seed: int = 0, dim: int = SEMANTIC_DIM) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded stand-in ``(mean, var)`` near (0, 1) for the tiny profile."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(dim, generator=gen) * 0.1, 0.5 + torch.rand(dim, generator=gen)


def pool_semantic_features(features: torch.Tensor, factor: int) -> torch.Tensor:
    """Normalised features ``[B, F, D]`` -> ``[B, D, F // factor]`` (mean of each full window)."""
    if features.dim() != 3:
        raise ValueError(f"expected w2v-bert features [B, F, D], got {tuple(features.shape)}")
    if features.shape[1] < factor:
        raise ValueError(f"{features.shape[1]} feature frames are fewer than one pooling window of {factor}")
    return F.avg_pool1d(features.transpose(1, 2), factor, factor)


class SemanticNormPool(nn.Module):
    """Raw ``hidden_states[17]`` ``[B, F, 1024]`` -> ``semantic_repr`` ``[B, 1024, F // factor]``."""

    def __init__(self, mean: torch.Tensor, var: torch.Tensor, downsample_factor: int) -> None:
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        var = torch.as_tensor(var, dtype=torch.float32).flatten()
        if mean.shape != var.shape or mean.dim() != 1:
            raise ValueError(f"stats must be two vectors of one width, got {tuple(mean.shape)} and {tuple(var.shape)}")
        if not bool((var > 0).all()) or not bool(torch.isfinite(mean).all()):
            raise ValueError("stats: the variances must be positive and the means finite")
        if downsample_factor < 1:
            raise ValueError(f"downsample_factor must be >= 1, got {downsample_factor}")
        self.downsample_factor = int(downsample_factor)
        self.register_buffer("mean", mean, persistent=False)
        # The reference divides by sqrt(var), computed once.
        self.register_buffer("std", var.sqrt(), persistent=False)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if hidden.dim() != 3 or hidden.shape[-1] != self.dim:
            raise ValueError(f"expected w2v-bert features [B, F, {self.dim}], got {tuple(hidden.shape)}")
        return pool_semantic_features((hidden.float() - self.mean) / self.std, self.downsample_factor)

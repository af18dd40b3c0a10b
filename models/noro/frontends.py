"""Noro's inputs, prepared as ``noro_inference.py`` prepares them (16 kHz mono in).

Source (what is said, and its intonation):

1. right-pad with zeros to a multiple of 1600 samples (always 1..1600 added): 1600 is the least
   common multiple of HuBERT's hop (320) and the mel hop (200), so content and pitch frames line up;
2. content: reflect-pad 40 samples each side (HuBERT then yields ``N / 320`` frames), HuBERT-base
   layer 9 (:mod:`models.noro.hubert`), nearest-neighbour upsampling by 1.6 to the 80 Hz mel rate
   (frame ``i`` takes HuBERT frame ``floor(i / 1.6)``), then the nearest k-means centre per frame
   (:mod:`models.noro.kmeans`);
3. pitch: WORLD F0 of the padded source, normalised (:mod:`models.noro.pitch`).

Reference (whose voice): right-pad with zeros to a multiple of 200 (1..200 added), then the log-mel
of :mod:`models.noro.mel`, with an all-True mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from models.noro.configs import NoroConfig
from models.noro.hubert import HubertLayerFeatures
from models.noro.kmeans import KMeansQuantizer
from models.noro.mel import pad_reference, reference_log_mel
from models.noro.pitch import source_pitch

__all__ = [
    "HUBERT_EDGE_PAD",
    "SOURCE_MULTIPLE",
    "UPSAMPLE_TO_MEL_RATE",
    "ReferenceFeatures",
    "SourceFeatures",
    "hubert_input",
    "min_reference_samples",
    "pad_source",
    "quantise_content",
    "reference_features",
    "source_features",
]

#: ``np.pad(wav, (0, 1600 - len(wav) % 1600))`` in ``noro_inference.py``.
SOURCE_MULTIPLE = 1600
#: ``F.pad(wav, (40, 40), "reflect")`` before HuBERT: (N + 80 - 400) // 320 + 1 = N / 320 frames.
HUBERT_EDGE_PAD = 40
#: 50 Hz HuBERT frames -> 80 Hz mel frames (hop 320 -> 200).
UPSAMPLE_TO_MEL_RATE = 1.6


@dataclass(frozen=True)
class SourceFeatures:
    """The model's source inputs (batch 1) and what they came from."""

    content: torch.Tensor  # [1, T, content_dim] k-means centre vectors
    pitch: torch.Tensor  # [1, T] normalised F0
    clusters: torch.Tensor  # [1, T] int64 k-means ids
    padded: np.ndarray  # [N'] the zero-padded source; T = N' / hop

    @property
    def frames(self) -> int:
        return int(self.content.shape[1])


@dataclass(frozen=True)
class ReferenceFeatures:
    mel: torch.Tensor  # [1, T_ref, n_mel] natural-log mel, frames first
    mask: torch.Tensor  # [1, T_ref] bool, all True


def pad_source(wave: np.ndarray, multiple: int = SOURCE_MULTIPLE) -> np.ndarray:
    """Zeros at the end up to the next multiple (a whole ``multiple`` when already aligned)."""
    return pad_reference(wave, multiple)


def hubert_input(padded: torch.Tensor) -> torch.Tensor:
    """``[B, N']`` -> ``[B, N' + 80]``: what HuBERT receives (reflect padding at both edges)."""
    return F.pad(padded, (HUBERT_EDGE_PAD, HUBERT_EDGE_PAD), mode="reflect")


def quantise_content(layer_features: torch.Tensor, kmeans: KMeansQuantizer) -> tuple[torch.Tensor, torch.Tensor]:
    """HuBERT features ``[B, T50, D]`` -> ``(ids [B, T80], centres [B, T80, D])`` at the mel rate,
    ``T80 = floor(1.6 T50)``."""
    upsampled = F.interpolate(layer_features.transpose(1, 2), scale_factor=UPSAMPLE_TO_MEL_RATE, mode="nearest")
    return kmeans(upsampled.transpose(1, 2))


def min_reference_samples(cfg: NoroConfig) -> int:
    """The shortest reference the mel can take: its reflect padding needs more samples than it mirrors."""
    hop = cfg.mel.hop_length
    # The padded length is the next multiple of the hop strictly above the length: it must exceed
    # the padding, so the shortest fitting padded length is the first multiple above it.
    return max((cfg.mel.pad // hop + 1) * hop - hop, 1)


@torch.inference_mode()
def source_features(wave: np.ndarray, hubert: HubertLayerFeatures, kmeans: KMeansQuantizer,
                    cfg: NoroConfig) -> SourceFeatures:
    """Mono 16 kHz source -> the model's content and pitch inputs (batch 1)."""
    padded = pad_source(wave)
    device = kmeans.cluster_centers.device
    feats = hubert(hubert_input(torch.from_numpy(padded)[None]).to(device))
    clusters, content = quantise_content(feats, kmeans)
    pitch, _, _ = source_pitch(padded, cfg.f0)
    if pitch.shape[1] != content.shape[1]:  # cannot happen with the 1600 padding; guards a changed config
        raise ValueError(f"pitch has {pitch.shape[1]} frames, content {content.shape[1]}")
    return SourceFeatures(content=content, pitch=pitch.to(device), clusters=clusters, padded=padded)


@torch.inference_mode()
def reference_features(wave: np.ndarray, cfg: NoroConfig, device: str | torch.device = "cpu") -> ReferenceFeatures:
    """Mono 16 kHz reference -> its log-mel ``[1, T_ref, n_mel]`` and an all-True mask."""
    padded = torch.from_numpy(pad_reference(wave, cfg.mel.hop_length))[None].to(device)
    mel = reference_log_mel(padded, cfg.mel)
    return ReferenceFeatures(mel=mel, mask=torch.ones(mel.shape[:2], dtype=torch.bool, device=mel.device))

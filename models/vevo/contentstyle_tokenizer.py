"""Vevo's vq8192 content-style tokenizer: normalised HuBERT layer-18 features -> RepCodec codes (50 Hz).

Reference: ``VevoInferencePipeline.extract_hubert_codec(vqvae, wavs, token_type="hubert_codec")``:
``(feats - mean) / std`` with the per-channel statistics of ``hubert_large_l18_mean_std.npz`` (keys
``mean`` and ``std``, 1024 each; in Amphion's code repo, ``models/vc/vevo/config/``), then
``RepCodec.quantize``. That RepCodec (``models/codec/kmeans/repcodec_model.py``) is the very class of
MaskGCT's semantic codec, so :class:`models.maskgct.semantic_codec.SemanticCodec` is reused as is
(VocosBackbone 384/2048/12 + Linear encoder, one factorized VQ stage of 8192 codes of dim 8 with cosine
matching, raw-row lookup). The same tokens are the FM condition and the AR model's output/prompt.

Official weights: ``amphion/Vevo`` ``tokenizer/vq8192/model.safetensors`` (keys ``encoder.*``,
``decoder.*``, ``quantizer.quantizers.0.*`` with weight-norm ``weight_g`` / ``weight_v``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from models.core.checkpoints import CheckpointError, load_state_dict_file
from models.core.configs import read_config
# Vevo's content-style tokenizer is MaskGCT's semantic codec (RepCodec), shared as is.
from models.maskgct.checkpoints import build_semantic_codec
from models.maskgct.configs import SemanticCodecConfig
from models.maskgct.semantic_codec import SemanticCodec
from models.vevo.configs import official_contentstyle_tokenizer_config, parse_contentstyle_tokenizer_config

__all__ = [
    "CONTENTSTYLE_TOKENIZER_FILE",
    "HUBERT_STATS_FILE",
    "VevoContentStyleTokenizer",
    "build_contentstyle_tokenizer",
    "load_contentstyle_tokenizer",
    "load_hubert_stats",
    "tiny_contentstyle_tokenizer_config",
]

CONTENTSTYLE_TOKENIZER_FILE = "tokenizer/vq8192/model.safetensors"
#: File name of the HuBERT feature statistics (Amphion code repo: models/vc/vevo/config/).
HUBERT_STATS_FILE = "hubert_large_l18_mean_std.npz"


def tiny_contentstyle_tokenizer_config(feature_dim: int = 32) -> SemanticCodecConfig:
    """The official token space (8192 codes of dim 8) on ``feature_dim``-d features, a 2-layer width-16 encoder."""
    return SemanticCodecConfig(codebook_size=8192, hidden_size=feature_dim, codebook_dim=8, vocos_dim=16,
                               vocos_intermediate_dim=32, vocos_num_layers=2)


def load_hubert_stats(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` float32 vectors from ``hubert_large_l18_mean_std.npz`` (read without pickle)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"HuBERT feature stats not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as stats:
            mean, std = stats["mean"], stats["std"]
    except (KeyError, ValueError, OSError) as exc:
        raise CheckpointError(f"cannot read {path} as the HuBERT feature stats (npz with 'mean' and 'std'): {exc}") from exc
    mean_t = torch.from_numpy(np.asarray(mean, dtype=np.float32)).flatten()
    std_t = torch.from_numpy(np.asarray(std, dtype=np.float32)).flatten()
    if mean_t.shape != std_t.shape:
        raise CheckpointError(f"{path}: 'mean' {tuple(mean_t.shape)} and 'std' {tuple(std_t.shape)} differ in shape")
    return mean_t, std_t


class VevoContentStyleTokenizer(nn.Module):
    """Raw HuBERT features ``[B, T, D]`` -> ``(codes [B, T] int64, quantized [B, T, D])``."""

    def __init__(self, codec: SemanticCodec, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        dim = codec.hidden_size
        mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean.shape != (dim,) or std.shape != (dim,):
            raise ValueError(f"stats must be two vectors of {dim}, got {tuple(mean.shape)} and {tuple(std.shape)}")
        if not bool((std > 0).all()) or not bool(torch.isfinite(mean).all()):
            raise ValueError("stats: the standard deviations must be positive and the means finite")
        self.codec = codec
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    @property
    def feature_dim(self) -> int:
        return self.codec.hidden_size

    @property
    def codebook_size(self) -> int:
        return self.codec.codebook_size

    def normalise(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean.to(feats)) / self.std.to(feats)

    @torch.inference_mode()
    def tokenize(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw layer-18 features ``[B, T, D]`` (50 Hz) -> ``(codes [B, T], quantized [B, T, D])``.

        Every frame is tokenized on its own receptive field (k7 convs): for a padded batch, take the first
        ``feat_lengths[i]`` codes of row ``i`` (the reference's ``codec_masks``)."""
        feats = feats.to(device=self.mean.device, dtype=torch.float32)
        return self.codec.quantize(self.normalise(feats))


def build_contentstyle_tokenizer(
    config: SemanticCodecConfig | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
    *,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    source: str = "content-style tokenizer state dict",
) -> VevoContentStyleTokenizer:
    """From ``config`` (None: tiny) and a state dict (None: seeded random weights; strict otherwise).
    Stats default to seeded values near (0, 1)."""
    config = tiny_contentstyle_tokenizer_config() if config is None else config
    codec = build_semantic_codec(config, state_dict, seed=seed, source=source)
    gen = torch.Generator().manual_seed(seed + 1)
    if mean is None:
        mean = torch.randn(config.hidden_size, generator=gen) * 0.1
    if std is None:
        std = 0.75 + 0.5 * torch.rand(config.hidden_size, generator=gen)
    return VevoContentStyleTokenizer(codec, mean, std).to(device)


def load_contentstyle_tokenizer(
    root: str | Path,
    stats_path: str | Path,
    config: SemanticCodecConfig | str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
) -> VevoContentStyleTokenizer:
    """The vq8192 tokenizer from a folder laid out like ``amphion/Vevo`` (:data:`CONTENTSTYLE_TOKENIZER_FILE`)
    or the weights file itself, and the stats file. ``config``: parsed, a path to ``Vq8192ToMels.json`` (or an
    AR config), or None for the official values."""
    root = Path(root)
    path = root if root.is_file() else root / CONTENTSTYLE_TOKENIZER_FILE
    if not path.is_file():
        raise CheckpointError(f"{root} is not laid out like amphion/Vevo: {CONTENTSTYLE_TOKENIZER_FILE} is missing")
    if config is None:
        config = official_contentstyle_tokenizer_config()
    elif not isinstance(config, SemanticCodecConfig):
        config = parse_contentstyle_tokenizer_config(read_config(config))
    mean, std = load_hubert_stats(stats_path)
    return build_contentstyle_tokenizer(config, load_state_dict_file(path), mean=mean, std=std, device=device,
                                        source=str(path))

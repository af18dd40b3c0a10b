"""ContentVec features for the SVC recipes: layer 12 of a HuBERT-base through its ``final_proj``,
256-d at 50 frames per second, from 16 kHz audio.

Contract:

* :class:`ContentVec` ``(wavs16k, durations) -> list of [frames, final_dim]``, each segment computed
  alone (served); :meth:`ContentVec.extract` is the reference's batched call on ``[B, N]``. As the
  reference's fairseq call does, every exactly-zero SAMPLE counts as padding (``padding_mask = wav ==
  0``): a feature frame whose samples are all zero is masked out of attention and zeroed before the
  positional conv, wherever it lies (digital silence inside a song as well as batch padding).
* :func:`load_contentvec` reads ContentVec's ``checkpoint_best_legacy_500.pt`` (a fairseq HuBERT
  checkpoint; get it from https://github.com/auspicious3000/contentvec, "ContentVec_legacy" 500
  classes, and place it as Amphion does at ``pretrained/contentvec/``), mapping its keys to
  transformers' ``HubertModel`` with :func:`fairseq_to_transformers`. :func:`build_contentvec` makes
  a tiny seeded one.

How this follows the reference and where it differs: ``models/svc/README.md`` ("Front ends").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from models.core.checkpoints import CheckpointError, load_exact
from models.core.safe_pickle import torch_load_inert
from models.core.random_init import init_random_weights
from models.svc.frontends import valid_content_frames

__all__ = [
    "CONTENTVEC_FILE",
    "ContentVec",
    "ContentVecConfig",
    "FRAME_SECONDS",
    "SAMPLE_RATE",
    "TINY_CONTENTVEC_DIM",
    "build_contentvec",
    "fairseq_padding_frames",
    "fairseq_to_transformers",
    "load_contentvec",
    "read_fairseq_state",
    "tiny_contentvec_config",
]

CONTENTVEC_FILE = "checkpoint_best_legacy_500.pt"
SAMPLE_RATE = 16000
FRAME_SECONDS = 0.02
#: Width of the tiny profile's output (the tiny ConditionEncoder's ``contentvec_dim``).
TINY_CONTENTVEC_DIM = 16


@dataclass(frozen=True)
class ContentVecConfig:
    """HuBERT-base as fairseq builds it for ContentVec (defaults: the legacy-500 checkpoint)."""

    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    ffn_dim: int = 3072
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    final_dim: int = 256
    output_layer: int = 12  # 1-based, fairseq's ``output_layer``: the features after that many layers

    def __post_init__(self) -> None:
        if not 1 <= self.output_layer <= self.num_layers:
            raise ValueError(f"output_layer must be in 1..{self.num_layers}, got {self.output_layer}")

    def hubert_config(self):
        """transformers' ``HubertConfig`` for the layers up to ``output_layer``, dropout and masking off."""
        from transformers import HubertConfig

        return HubertConfig(
            conv_dim=list(self.conv_dim), conv_kernel=list(self.conv_kernel), conv_stride=list(self.conv_stride),
            conv_bias=False, feat_extract_norm="group", feat_extract_activation="gelu",
            hidden_size=self.hidden_size, num_hidden_layers=self.output_layer,
            num_attention_heads=self.num_heads, intermediate_size=self.ffn_dim, hidden_act="gelu",
            num_conv_pos_embeddings=self.pos_conv_kernel, num_conv_pos_embedding_groups=self.pos_conv_groups,
            do_stable_layer_norm=False, feat_proj_layer_norm=True, layer_norm_eps=1e-5,
            mask_time_prob=0.0, mask_feature_prob=0.0, hidden_dropout=0.0, activation_dropout=0.0,
            attention_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0,
        )


def tiny_contentvec_config() -> ContentVecConfig:
    """The same conv strides and kernels (50 Hz from 16 kHz) and post-LN layout at CPU-cheap widths."""
    return ContentVecConfig(conv_dim=(16,) * 7, hidden_size=32, num_layers=2, num_heads=2, ffn_dim=64,
                            pos_conv_kernel=16, pos_conv_groups=4, final_dim=TINY_CONTENTVEC_DIM, output_layer=2)


def fairseq_padding_frames(is_padding: torch.Tensor, frames: int) -> torch.Tensor:
    """A per-sample padding mask ``[B, N]`` -> per-frame ``[B, frames]`` the way fairseq's HuBERT reduces
    it: drop the last ``N % frames`` samples, cut the rest into ``frames`` equal runs, and call a frame
    padding when its whole run is."""
    batch, samples = is_padding.shape
    usable = samples - samples % frames
    return is_padding[:, :usable].reshape(batch, frames, -1).all(dim=-1)


class ContentVec(nn.Module):
    """transformers' ``HubertModel`` (up to ``output_layer``) and ContentVec's ``final_proj``."""

    def __init__(self, config: ContentVecConfig) -> None:
        super().__init__()
        from transformers import HubertModel

        self.config = config
        self.hubert = HubertModel(config.hubert_config())
        self.final_proj = nn.Linear(config.hidden_size, config.final_dim)
        self.dim = config.final_dim
        self.sample_rate = SAMPLE_RATE

    @property
    def device(self) -> torch.device:
        return self.final_proj.weight.device

    @property
    def min_samples(self) -> int:
        """Shortest input that gives one frame (the conv stack's receptive field: 400 samples)."""
        samples = 1
        for kernel, stride in zip(reversed(self.config.conv_kernel), reversed(self.config.conv_stride)):
            samples = (samples - 1) * stride + kernel
        return samples

    @torch.inference_mode()
    def extract(self, wavs16k: torch.Tensor) -> torch.Tensor:
        """The reference's call on a batch ``[B, N]`` (zero-padded): ``final_proj`` of the layer output,
        ``[B, frames, final_dim]``, exactly-zero samples treated as padding. An item with no non-zero
        sample at all is computed unmasked (the reference's attention would give NaN)."""
        if wavs16k.dim() != 2:
            raise ValueError(f"expected waveforms [B, N], got {tuple(wavs16k.shape)}")
        if wavs16k.shape[1] < self.min_samples:
            raise ValueError(f"audio too short for ContentVec: {wavs16k.shape[1]} samples, needs {self.min_samples}")
        weight = self.final_proj.weight
        wavs = wavs16k.to(device=weight.device, dtype=weight.dtype)
        conv = self.hubert.feature_extractor(wavs).transpose(1, 2)
        valid = ~fairseq_padding_frames(wavs == 0, conv.shape[1])
        valid[~valid.any(dim=1)] = True
        hidden = self.hubert.feature_projection(conv)
        if isinstance(hidden, tuple):  # older transformers also return the normalised conv features
            hidden = hidden[0]
        out = self.hubert.encoder(hidden, attention_mask=valid).last_hidden_state
        return self.final_proj(out).float()

    @torch.inference_mode()
    def forward(self, wavs16k: Sequence[torch.Tensor | np.ndarray],
                durations: Sequence[float] | None = None) -> list[torch.Tensor]:
        """Each 16 kHz segment computed alone -> its valid features ``[frames, final_dim]``
        (``durations`` in seconds as the reference counts them; None: from the sample counts)."""
        items = [torch.as_tensor(np.asarray(w) if not isinstance(w, torch.Tensor) else w).float().reshape(-1)
                 for w in wavs16k]
        if durations is None:
            durations = [w.numel() / SAMPLE_RATE for w in items]
        if len(durations) != len(items):
            raise ValueError(f"need one duration per segment ({len(items)}), got {len(durations)}")
        return [self.extract(w[None])[0, : valid_content_frames(float(d), FRAME_SECONDS)]
                for w, d in zip(items, durations)]


# ---------------------------------------------------------------------------------------------
# fairseq checkpoint -> transformers names
# ---------------------------------------------------------------------------------------------

# Inside ``encoder.layers.N.``: fairseq name -> transformers name.
_LAYER_NAMES = {
    "self_attn.q_proj": "attention.q_proj",
    "self_attn.k_proj": "attention.k_proj",
    "self_attn.v_proj": "attention.v_proj",
    "self_attn.out_proj": "attention.out_proj",
    "self_attn_layer_norm": "layer_norm",
    "fc1": "feed_forward.intermediate_dense",
    "fc2": "feed_forward.output_dense",
    "final_layer_norm": "final_layer_norm",
}
# Whole-key renames outside the transformer layers.
_FIXED_NAMES = {
    "layer_norm.weight": "hubert.feature_projection.layer_norm.weight",
    "layer_norm.bias": "hubert.feature_projection.layer_norm.bias",
    "post_extract_proj.weight": "hubert.feature_projection.projection.weight",
    "post_extract_proj.bias": "hubert.feature_projection.projection.bias",
    # fairseq keeps the hook-style weight norm (dim 2); transformers registers a parametrization.
    "encoder.pos_conv.0.weight_g": "hubert.encoder.pos_conv_embed.conv.parametrizations.weight.original0",
    "encoder.pos_conv.0.weight_v": "hubert.encoder.pos_conv_embed.conv.parametrizations.weight.original1",
    "encoder.pos_conv.0.bias": "hubert.encoder.pos_conv_embed.conv.bias",
    "encoder.layer_norm.weight": "hubert.encoder.layer_norm.weight",
    "encoder.layer_norm.bias": "hubert.encoder.layer_norm.bias",
    "final_proj.weight": "final_proj.weight",
    "final_proj.bias": "final_proj.bias",
}
# Pre-training only: the mask embedding and the cluster label embeddings.
_TRAINING_ONLY = ("mask_emb", "label_embs_concat")
_CONV_KEY = re.compile(r"^feature_extractor\.conv_layers\.(\d+)\.(0|2)\.(weight|bias)$")
_LAYER_KEY = re.compile(r"^encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$")


def fairseq_to_transformers(state_dict: Mapping[str, torch.Tensor], output_layer: int,
                            source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """A fairseq HuBERT state dict (ContentVec's ``["model"]``) under :class:`ContentVec`'s names, the
    transformer layers above ``output_layer`` dropped (they are never run). The training-only entries
    (``mask_emb``, ``label_embs_concat``) are dropped; any other unknown key is an error."""
    out: dict[str, torch.Tensor] = {}
    unknown, deepest = [], -1
    for key, value in state_dict.items():
        if key in _TRAINING_ONLY:
            continue
        if key in _FIXED_NAMES:
            out[_FIXED_NAMES[key]] = value
            continue
        conv, layer = _CONV_KEY.match(key), _LAYER_KEY.match(key)
        if conv:
            # ``conv_layers.i.0`` is the conv, ``conv_layers.0.2`` the first layer's group norm.
            part = "conv" if conv.group(2) == "0" else "layer_norm"
            out[f"hubert.feature_extractor.conv_layers.{conv.group(1)}.{part}.{conv.group(3)}"] = value
        elif layer and layer.group(2) in _LAYER_NAMES:
            index = int(layer.group(1))
            deepest = max(deepest, index)
            if index < output_layer:
                out[f"hubert.encoder.layers.{index}.{_LAYER_NAMES[layer.group(2)]}.{layer.group(3)}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{source}: keys not understood as a fairseq HuBERT: {unknown[:20]}")
    if deepest + 1 < output_layer:
        raise CheckpointError(f"{source}: has {deepest + 1} transformer layers, "
                              f"output layer {output_layer} was asked for")
    return out


def read_fairseq_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``model`` state dict of a fairseq checkpoint, read without running pickled code: the
    training bookkeeping next to it (``cfg`` / ``args``, optimiser history) becomes inert placeholders."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ContentVec checkpoint not found: {path}")
    try:
        obj = torch_load_inert(path)
    except Exception as exc:  # a corrupt or foreign file
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    model = obj.get("model") if isinstance(obj, Mapping) else None
    if not isinstance(model, Mapping) or not all(isinstance(v, torch.Tensor) for v in model.values()):
        raise CheckpointError(f"{path}: expected a fairseq checkpoint with a 'model' state dict")
    return {str(k): v for k, v in model.items()}


def _empty(config: ContentVecConfig) -> ContentVec:
    with torch.device("meta"):
        return ContentVec(config)


def build_contentvec(config: ContentVecConfig | None = None,
                     state_dict: Mapping[str, torch.Tensor] | None = None, *, seed: int = 0,
                     device: str | torch.device = "cpu", source: str = "ContentVec state dict") -> ContentVec:
    """A ContentVec from ``config`` (None: tiny) and a fairseq-layout state dict, strictly loaded
    (None: seeded random weights; the group norm and positional conv keep their built values)."""
    config = tiny_contentvec_config() if config is None else config
    if state_dict is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # HubertModel draws while it is built
            model = ContentVec(config)
        init_random_weights(model, seed)
    else:
        model = _empty(config)
        load_exact(model, fairseq_to_transformers(state_dict, config.output_layer, source), source, assign=True)
    return model.float().eval().requires_grad_(False).to(device)


def load_contentvec(path: str | Path, *, config: ContentVecConfig | None = None,
                    device: str | torch.device = "cpu") -> ContentVec:
    """ContentVec from ``checkpoint_best_legacy_500.pt`` (the file itself or a folder holding it);
    ``config`` defaults to the legacy-500 HuBERT-base."""
    path = Path(path)
    if path.is_dir():
        path = path / CONTENTVEC_FILE
    config = ContentVecConfig() if config is None else config
    return build_contentvec(config, read_fairseq_state(path), device=device, source=str(path))


"""Noro's content network: HuBERT-base (fairseq ``hubert_base_ls960``), the output of transformer layer 9.

The reference calls fairseq's ``model(wav, features_only=True, mask=False, output_layer=9)["x"]`` on
the raw waveform: HuBERT-base was trained without waveform normalisation, and none is applied.
:class:`HubertLayerFeatures` is torchaudio's ``wav2vec2_model`` with the ``HUBERT_BASE`` bundle's
parameters, built only up to the layer read (the layers above never run). ``N`` samples give
``(N - 400) // 320 + 1`` frames at 50 Hz.

Checkpoints: torchaudio's conversion of the fairseq file (``hubert_fairseq_base_ls960.pth``), or a
Hugging Face ``HubertModel`` state dict (``facebook/hubert-base-ls960``: ``pytorch_model.bin`` /
``model.safetensors``), whose names are mapped onto torchaudio's (:func:`torchaudio_keys`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from models.core.checkpoints import CheckpointError, load_exact, load_state_dict_file

__all__ = [
    "HUBERT_BASE_FILE",
    "HUBERT_BASE_PARAMS",
    "NORO_LAYER",
    "HubertLayerFeatures",
    "build_hubert",
    "load_hubert",
    "tiny_hubert_params",
    "torchaudio_keys",
]

#: torchaudio's file name for the converted fairseq ``hubert_base_ls960.pt``.
HUBERT_BASE_FILE = "hubert_fairseq_base_ls960.pth"
#: ``HubertExtractor.extract_content_features`` reads ``output_layer=9``.
NORO_LAYER = 9
SAMPLE_RATE = 16000

#: ``torchaudio.pipelines.HUBERT_BASE``'s model parameters with the dropouts at 0 (inference only).
HUBERT_BASE_PARAMS: dict[str, Any] = {
    "extractor_mode": "group_norm",
    "extractor_conv_layer_config": [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2,
    "extractor_conv_bias": False,
    "encoder_embed_dim": 768,
    "encoder_projection_dropout": 0.0,
    "encoder_pos_conv_kernel": 128,
    "encoder_pos_conv_groups": 16,
    "encoder_num_layers": 12,
    "encoder_num_heads": 12,
    "encoder_attention_dropout": 0.0,
    "encoder_ff_interm_features": 3072,
    "encoder_ff_interm_dropout": 0.0,
    "encoder_dropout": 0.0,
    "encoder_layer_norm_first": False,
    "encoder_layer_drop": 0.0,
    "aux_num_out": None,
}

# torchaudio's old weight-norm names of the positional conv -> the parametrization names of current torch.
_WEIGHT_NORM = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}
_POS_CONV = "encoder.transformer.pos_conv_embed.conv."
_LAYER = re.compile(r"^encoder\.transformer\.layers\.(\d+)\.")


def tiny_hubert_params(dim: int = 32) -> dict[str, Any]:
    """HuBERT-base's structure (same strides and kernels: 50 Hz from 16 kHz, post-norm layers) at width ``dim``."""
    params = dict(HUBERT_BASE_PARAMS)
    params.update(extractor_conv_layer_config=[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2,
                  encoder_embed_dim=dim, encoder_pos_conv_kernel=16, encoder_pos_conv_groups=4,
                  encoder_num_layers=NORO_LAYER, encoder_num_heads=2, encoder_ff_interm_features=2 * dim)
    return params


class HubertLayerFeatures(nn.Module):
    """16 kHz waveforms ``[B, N]`` -> the output of transformer layer ``layer``, ``[B, T50, D]``."""

    def __init__(self, model: nn.Module, params: Mapping[str, Any], layer: int) -> None:
        super().__init__()
        if len(model.encoder.transformer.layers) != layer:
            raise ValueError(f"the model must be built with exactly {layer} layers")
        self.model = model.eval().requires_grad_(False)
        self.layer = layer
        self.dim = int(params["encoder_embed_dim"])
        self.conv_config = [tuple(c) for c in params["extractor_conv_layer_config"]]

    def num_frames(self, num_samples: int) -> int:
        n = num_samples
        for _, kernel, stride in self.conv_config:
            n = (n - kernel) // stride + 1
        return max(n, 0)

    @torch.inference_mode()
    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        if self.num_frames(wavs.shape[-1]) < 1:
            raise ValueError(f"audio too short for HuBERT: {wavs.shape[-1]} samples")
        weight = next(self.model.parameters())
        feats, _ = self.model.extract_features(wavs.to(device=weight.device, dtype=weight.dtype),
                                               num_layers=self.layer)
        return feats[-1].float()


def _model(params: Mapping[str, Any], layer: int, device: str | torch.device) -> nn.Module:
    from torchaudio.models import wav2vec2_model

    built = dict(params, encoder_num_layers=layer)  # the layers above the one read never run
    with torch.random.fork_rng(devices=[]), torch.device(device):
        return wav2vec2_model(**built)


def build_hubert(params: Mapping[str, Any] | None = None, *, layer: int = NORO_LAYER, seed: int = 0,
                 device: str | torch.device = "cpu") -> HubertLayerFeatures:
    """A seeded random HuBERT (``params`` None: :func:`tiny_hubert_params`)."""
    params = tiny_hubert_params() if params is None else dict(params)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _model(params, layer, "cpu")
    return HubertLayerFeatures(model, params, layer).to(device)


def torchaudio_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A HuBERT state dict in torchaudio's names: torchaudio's own file as is, or a Hugging Face
    ``HubertModel`` one (``feature_projection.*`` / ``encoder.*`` moved under torchaudio's encoder;
    ``masked_spec_embed``, used only for training-time masking, dropped). Old weight-norm names
    of the positional conv become the parametrization names."""
    hf = any(k.startswith("feature_projection.") for k in state)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("hubert."):  # HubertForCTC and friends wrap the model
            key = key[len("hubert."):]
        if hf:
            if key == "masked_spec_embed":
                continue
            if key.startswith("feature_projection."):
                key = "encoder." + key
            elif key.startswith("encoder."):
                key = "encoder.transformer." + key[len("encoder."):]
        if key.startswith(_POS_CONV):
            tail = key[len(_POS_CONV):]
            key = _POS_CONV + _WEIGHT_NORM.get(tail, tail)
        out[key] = value
    return out


def _up_to_layer(state: Mapping[str, torch.Tensor], layer: int, source: str) -> dict[str, torch.Tensor]:
    out, deepest = {}, -1
    for key, value in state.items():
        found = _LAYER.match(key)
        if found:
            deepest = max(deepest, int(found.group(1)))
            if int(found.group(1)) >= layer:
                continue
        if key.startswith("aux."):  # a fine-tuned CTC head; never read for layer features
            continue
        out[key] = value
    if deepest + 1 < layer:
        raise CheckpointError(f"{source}: has {deepest + 1} transformer layers, layer {layer} is read")
    return out


def load_hubert(path: str | Path, *, params: Mapping[str, Any] | None = None, layer: int = NORO_LAYER,
                device: str | torch.device = "cpu") -> HubertLayerFeatures:
    """HuBERT from a file (or a folder holding :data:`HUBERT_BASE_FILE`), read without pickled code;
    ``params`` default to HuBERT-base's. Strict up to ``layer`` (missing / unexpected keys named)."""
    path = Path(path)
    if path.is_dir():
        path = path / HUBERT_BASE_FILE
    if not path.is_file():
        raise CheckpointError(f"HuBERT checkpoint not found: {path} (expected torchaudio's {HUBERT_BASE_FILE} "
                              f"or a HubertModel state dict)")
    params = dict(HUBERT_BASE_PARAMS if params is None else params)
    state = _up_to_layer(torchaudio_keys(load_state_dict_file(path)), layer, str(path))
    model = _model(params, layer, "meta")
    load_exact(model, state, str(path), assign=True)
    return HubertLayerFeatures(model, params, layer).to(device)

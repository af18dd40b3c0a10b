"""Vevo's HuBERT front end: layer-18 features of HuBERT-large (1024-d, 50 Hz) from 16 kHz audio.

:class:`HubertFeatures` is torchaudio's ``wav2vec2_model`` with the ``HUBERT_LARGE`` bundle's
parameters, built up to the layer read, each utterance normalised over its own valid samples:
``N`` samples give ``(N - 400) // 320 + 1`` frames (0 below 400). ``build_hubert`` makes a tiny
seeded one, ``load_hubert`` the official one (``hubert_fairseq_large_ll60k.pth``, found through
``$AMPHION_HUBERT_DIR``). How this matches the reference: ``models/vevo/README.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.core.checkpoints import CheckpointError, load_exact

__all__ = [
    "HUBERT_FILE",
    "HUBERT_LARGE_PARAMS",
    "OFFICIAL_LAYER",
    "HubertFeatures",
    "build_hubert",
    "load_hubert",
    "tiny_hubert_params",
]

HUBERT_FILE = "hubert_fairseq_large_ll60k.pth"
OFFICIAL_LAYER = 18
SAMPLE_RATE = 16000
WAVEFORM_NORM_EPS = 1e-5  # F.layer_norm's default, as the torchaudio bundle calls it

#: ``torchaudio.pipelines.HUBERT_LARGE``'s model parameters (``wav2vec2_model`` arguments).
HUBERT_LARGE_PARAMS: dict[str, Any] = {
    "extractor_mode": "layer_norm",
    "extractor_conv_layer_config": [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2,
    "extractor_conv_bias": False,
    "encoder_embed_dim": 1024,
    "encoder_projection_dropout": 0.0,
    "encoder_pos_conv_kernel": 128,
    "encoder_pos_conv_groups": 16,
    "encoder_num_layers": 24,
    "encoder_num_heads": 16,
    "encoder_attention_dropout": 0.0,
    "encoder_ff_interm_features": 4096,
    "encoder_ff_interm_dropout": 0.0,
    "encoder_dropout": 0.0,
    "encoder_layer_norm_first": True,
    "encoder_layer_drop": 0.0,
    "aux_num_out": None,
}

_LAYER_KEY = re.compile(r"^encoder\.transformer\.layers\.(\d+)\.")
# Old weight-norm names of the positional conv -> the parametrization names of current torch.
_WEIGHT_NORM_KEYS = {
    "encoder.transformer.pos_conv_embed.conv.weight_g": "encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original0",
    "encoder.transformer.pos_conv_embed.conv.weight_v": "encoder.transformer.pos_conv_embed.conv.parametrizations.weight.original1",
}


def tiny_hubert_params() -> dict[str, Any]:
    """HuBERT-large's structure (same conv strides and kernels: 50 Hz, 18+ layers, pre-LN) at width 32."""
    params = dict(HUBERT_LARGE_PARAMS)
    params.update(
        extractor_conv_layer_config=[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2,
        encoder_embed_dim=32, encoder_pos_conv_kernel=16, encoder_pos_conv_groups=4, encoder_num_layers=OFFICIAL_LAYER,
        encoder_num_heads=2, encoder_ff_interm_features=64,
    )
    return params


def _frames(lengths: torch.Tensor, conv_config: list[tuple[int, int, int]]) -> torch.Tensor:
    for _, kernel, stride in conv_config:
        lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
    return lengths.clamp(min=0)


class HubertFeatures(nn.Module):
    """16 kHz waveforms ``[B, N]`` -> layer features ``[B, T, D]`` at 50 Hz and their valid lengths."""

    def __init__(self, model: nn.Module, params: Mapping[str, Any], layer: int) -> None:
        super().__init__()
        num_layers = len(model.encoder.transformer.layers)
        if not 1 <= layer <= num_layers:
            raise ValueError(f"layer must be in 1..{num_layers}, got {layer}")
        model.encoder.transformer.layers = model.encoder.transformer.layers[:layer]
        self.model = model.eval().requires_grad_(False)
        self.layer = layer
        self.conv_config = [tuple(c) for c in params["extractor_conv_layer_config"]]
        self.dim = int(params["encoder_embed_dim"])
        self.sample_rate = SAMPLE_RATE

    @property
    def min_samples(self) -> int:
        """Shortest waveform that yields a frame (the front end's receptive field, 400 samples)."""
        return self.num_samples_for(1)

    def num_samples_for(self, frames: int) -> int:
        samples = frames
        for _, kernel, stride in reversed(self.conv_config):
            samples = (samples - 1) * stride + kernel
        return samples

    def num_frames(self, num_samples: int) -> int:
        return int(_frames(torch.tensor([num_samples]), self.conv_config)[0])

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _normalise(self, wavs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(wavs)
        for i, n in enumerate(lengths.tolist()):
            out[i, :n] = F.layer_norm(wavs[i, :n], (n,), eps=WAVEFORM_NORM_EPS)
        return out

    @torch.inference_mode()
    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``wavs`` ``[B, N]`` at 16 kHz, right-padded, ``lengths`` valid samples (default: all) ->
        ``(features [B, T, D] float32, feature lengths [B])``; frames past an item's length are padding."""
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        if wavs.dim() != 2:
            raise ValueError(f"expected waveforms [B, N], got {tuple(wavs.shape)}")
        weight = next(self.model.parameters())
        wavs = wavs.to(device=weight.device, dtype=torch.float32)
        if lengths is None:
            lengths = torch.full((wavs.shape[0],), wavs.shape[1], dtype=torch.long)
        lengths = torch.as_tensor(lengths).long().flatten().to(wavs.device)
        if lengths.shape != (wavs.shape[0],) or bool((lengths > wavs.shape[1]).any()):
            raise ValueError(f"lengths must be {wavs.shape[0]} values of at most {wavs.shape[1]}")
        if int(lengths.min()) < self.min_samples:
            raise ValueError(f"audio too short for HuBERT: {int(lengths.min())} samples, needs {self.min_samples}")
        normed = self._normalise(wavs, lengths).to(weight.dtype)
        feats, feat_lengths = self.model.extract_features(normed, lengths, num_layers=self.layer)
        return feats[-1].float(), feat_lengths


def _seeded_model(params: Mapping[str, Any], seed: int) -> nn.Module:
    from torchaudio.models import wav2vec2_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return wav2vec2_model(**params)


def build_hubert(params: Mapping[str, Any] | None = None, *, layer: int = OFFICIAL_LAYER, seed: int = 0,
                 device: str | torch.device = "cpu") -> HubertFeatures:
    """A seeded random model from ``wav2vec2_model`` parameters (None: :func:`tiny_hubert_params`)."""
    params = tiny_hubert_params() if params is None else dict(params)
    params["encoder_num_layers"] = min(params["encoder_num_layers"], layer)  # layers above are never run
    return HubertFeatures(_seeded_model(params, seed), params, layer).to(device)


def _for_layers(state_dict: Mapping[str, torch.Tensor], layer: int, source: str) -> dict[str, torch.Tensor]:
    """Rename old weight-norm keys and drop the transformer layers above ``layer`` (checking they exist:
    a checkpoint with fewer layers than asked for is an error)."""
    out, deepest = {}, -1
    for key, value in state_dict.items():
        match = _LAYER_KEY.match(key)
        if match:
            index = int(match.group(1))
            deepest = max(deepest, index)
            if index >= layer:
                continue
        out[_WEIGHT_NORM_KEYS.get(key, key)] = value
    if deepest + 1 < layer:
        raise CheckpointError(f"{source}: has {deepest + 1} transformer layers, layer {layer} was asked for")
    return out


def load_hubert(path: str | Path, *, params: Mapping[str, Any] | None = None, layer: int = OFFICIAL_LAYER,
                device: str | torch.device = "cpu") -> HubertFeatures:
    """HuBERT from ``hubert_fairseq_large_ll60k.pth`` (the file itself or a folder holding it), read with
    ``torch.load(weights_only=True)``; ``params`` default to HuBERT-large's. Strict up to ``layer``."""
    path = Path(path)
    if path.is_dir():
        path = path / HUBERT_FILE
    if not path.is_file():
        raise CheckpointError(f"HuBERT checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt file, or a pickle holding more than tensors
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    params = dict(HUBERT_LARGE_PARAMS if params is None else params)
    params["encoder_num_layers"] = layer
    with torch.device("meta"):
        from torchaudio.models import wav2vec2_model

        model = wav2vec2_model(**params)
    load_exact(model, _for_layers(state, layer, str(path)), str(path), assign=True)
    return HubertFeatures(model, params, layer).to(device)

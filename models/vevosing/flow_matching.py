"""Vevo1.5's flow-matching acoustic transformer: 12.5 Hz Coco content-style ids + a timbre-reference
mel -> 50 Hz mel.

:class:`VevoSingFlowMatching` is Vevo's model (:class:`~models.vevo.flow_matching.VevoFlowMatching`)
plus the layers that upsample the condition to the mel rate; :meth:`VevoSingFlowMatching.generate`
fits the condition to ``target_frames`` when given, else keeps it whole.
``build_vevosing_fm_model`` / ``load_vevosing_fm_model`` build or strictly load one (the official
``fm_emilia101k_*`` checkpoints of ``amphion/Vevo1.5``). Details: ``models/vevosing/README.md``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from models.blocks.diff_llama import build_or_load
from models.core.checkpoints import load_state_dict_file
# Vevo1.5's FM is Vevo's flow-matching transformer (its "vevosing" variant): the shared model.
from models.vevo.flow_matching import VevoFlowMatching, read_fm_config
from models.vevo.fm_ar_configs import FMConfig, official_checkpoint

__all__ = [
    "FM_CHECKPOINTS",
    "VevoSingFlowMatching",
    "build_vevosing_fm_model",
    "load_vevosing_fm_model",
]

#: The released Vevo1.5 FM checkpoints (the pipeline scripts use singnet7k).
FM_CHECKPOINTS = ("fm_emilia101k_singnet7k", "fm_emilia101k_sing0.4k")


def _resampler(hidden: int, doublings: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(doublings):  # indices 0, 2, ... hold the convolutions (checkpoint keys)
        layers += [nn.ConvTranspose1d(hidden, hidden, kernel_size=4, stride=2, padding=1), nn.GELU()]
    return nn.Sequential(*layers)


class VevoSingFlowMatching(VevoFlowMatching):
    """Vevo1.5's ``FlowMatchingTransformer`` (inference): Vevo's model with upsampled conditions."""

    def __init__(self, config: FMConfig) -> None:
        if config.family != "vevosing":
            raise ValueError(f"VevoSingFlowMatching needs a vevosing FM configuration, got {config.family!r}")
        super().__init__(config)
        self.scale_factor = config.cond_scale_factor
        if config.resampling_doublings:
            self.resampling_layers = _resampler(config.hidden_size, config.resampling_doublings)

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Content-style ids (B, N) -> condition (B, N * cond_scale_factor, H) at the mel rate."""
        cond = super().embed_codes(codes)
        if self.scale_factor == 1:
            return cond
        return self.resampling_layers(cond.transpose(1, 2)).transpose(1, 2)

    @staticmethod
    def fit_condition(cond: torch.Tensor, frames: int) -> torch.Tensor:
        """``cond`` cut to ``frames`` frames, or padded by repeating its last frame (``inference_fm``)."""
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        if cond.shape[1] >= frames:
            return cond[:, :frames]
        return torch.cat([cond, cond[:, -1:].expand(-1, frames - cond.shape[1], -1)], dim=1)

    def generate(self, codes: torch.Tensor, prompt_mel: torch.Tensor, *, target_frames: int | None = None,
                 **kwargs) -> torch.Tensor:
        """The pipeline's FM stage. ``codes`` (B, N) = [timbre-reference ids | source or AR ids] at
        12.5 Hz, ``prompt_mel`` (B, P, mel) the timbre reference's normalised mel.

        ``target_frames`` given (``inference_fm``): the condition is fitted to ``P + target_frames``
        and the result has ``target_frames`` frames. None (``inference_ar_and_fm``): the whole
        upsampled condition is used, the result has ``N * cond_scale_factor - P`` frames.
        Keyword arguments as :meth:`VevoFlowMatching.reverse_diffusion`.
        """
        with torch.inference_mode():
            cond = self.embed_codes(codes)
            if target_frames is not None:
                cond = self.fit_condition(cond, prompt_mel.shape[1] + int(target_frames))
        return self.reverse_diffusion(cond, prompt_mel, **kwargs)


def build_vevosing_fm_model(config: FMConfig, state_dict: dict[str, torch.Tensor] | None = None, *,
                            source: str = "Vevo1.5 FM checkpoint", seed: int = 0,
                            device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> VevoSingFlowMatching:
    """A :class:`VevoSingFlowMatching` in eval mode: ``state_dict`` loaded strictly, else seeded random
    weights (the tiny profile)."""
    return build_or_load(lambda: VevoSingFlowMatching(config), state_dict, source=source, seed=seed, device=device,
                         dtype=dtype)


def load_vevosing_fm_model(weights: str | Path, config: FMConfig | dict | str | Path | None = None, *,
                           checkpoint: str = "fm_emilia101k_singnet7k", device: torch.device | str = "cpu",
                           dtype: torch.dtype = torch.float32) -> VevoSingFlowMatching:
    """Vevo1.5's FM from ``model.safetensors`` or a folder laid out like ``amphion/Vevo1.5``
    (``acoustic_modeling/<checkpoint>/model.safetensors``); ``config`` None = the official one."""
    if checkpoint not in FM_CHECKPOINTS:
        raise ValueError(f"unknown Vevo1.5 FM checkpoint {checkpoint!r}; expected one of {FM_CHECKPOINTS}")
    entry = official_checkpoint(checkpoint, FMConfig)
    path = Path(weights)
    if path.is_dir():
        path = path / entry.weights_file
    cfg = entry.config if config is None else read_fm_config(config, "vevosing")
    assert isinstance(cfg, FMConfig)
    return build_vevosing_fm_model(cfg, load_state_dict_file(path), source=str(path), device=device, dtype=dtype)

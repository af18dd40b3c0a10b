"""TransformerSVC (Amphion ``egs/svc/TransformerSVC``, conformer variant): frame features -> normalised mel.

The network is ``nn.ModuleList([ConditionEncoder, Conformer])`` as ``TransformerInference._build_model``
builds it, so checkpoint keys are ``0.*`` (:mod:`models.svc.condition_encoder`) and ``1.*``
(:mod:`models.svc.conformer`). Inference is one deterministic pass:
``mel = model[1](model[0](features), mask)`` ``[B, T, n_mel]``, min-max normalised to about [-1, 1]
with the training data's per-bin extrema; the caller de-normalises it
(``(mel + 1) / 2 * (mel_max - mel_min + 1e-12) + mel_min``, the target dataset's ``mel_min.npy`` /
``mel_max.npy``), keeps ``target_len`` frames and runs the vocoder (Amphion's singing BigVGAN).

The recipe's ``transformer.type: "transformer"`` (a plain ``nn.TransformerEncoder``) is not supported:
the recipe selects ``"conformer"`` and no checkpoint of the other kind is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.core.configs import ConfigError
from models.svc.condition_encoder import (
    ConditionEncoderConfig,
    config_dict,
    official_condition_encoder_config,
    parse_condition_encoder_config,
    tiny_condition_encoder_config,
)
from models.svc.conformer import (
    Conformer,
    ConformerConfig,
    conformer_init_rule,
    parse_conformer_config,
    require_positive_int,
)
from models.svc.experiment import check_condition_width, check_model_type, require_section
from models.svc.model_base import ConditionedSVC, build_svc_model, load_svc_run

__all__ = [
    "RECIPE_ARGS",
    "TINY_ARGS",
    "TransformerSVC",
    "TransformerSVCConfig",
    "build_transformer_svc",
    "load_transformer_svc",
    "parse_transformer_svc_config",
    "recipe_config",
]

SUPPORTED_TYPE = "conformer"
MODEL_TYPE = "TransformerSVC"


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransformerSVCConfig:
    condition_encoder: ConditionEncoderConfig
    conformer: ConformerConfig
    sample_rate: int
    hop_size: int

    @property
    def n_mel(self) -> int:
        return self.conformer.output_dim


def parse_transformer_svc_config(args: Mapping[str, Any]) -> TransformerSVCConfig:
    """A merged Amphion TransformerSVC ``args.json`` (``preprocess``, ``model.condition_encoder``,
    ``model.transformer``) -> :class:`TransformerSVCConfig`."""
    check_model_type(args, MODEL_TYPE)
    model = require_section(args, "model", "args.json")
    pre = require_section(args, "preprocess", "args.json")
    section = require_section(model, "transformer", "model")
    kind = section.get("type", SUPPORTED_TYPE)
    if kind != SUPPORTED_TYPE:
        raise ConfigError(f"TransformerSVC: model.transformer.type {kind!r} is not supported (only {SUPPORTED_TYPE!r})")
    conformer = parse_conformer_config(section, "model.transformer")
    condition = parse_condition_encoder_config(args)
    check_condition_width(condition, conformer.input_dim, "model.transformer.input_dim")
    n_mel = pre.get("n_mel")
    if n_mel is not None and int(n_mel) != conformer.output_dim:
        raise ConfigError(f"model.transformer.output_dim {conformer.output_dim} != preprocess.n_mel {n_mel}")
    return TransformerSVCConfig(
        condition_encoder=condition,
        conformer=conformer,
        sample_rate=require_positive_int(pre, "sample_rate", "preprocess"),
        hop_size=require_positive_int(pre, "hop_size", "preprocess"),
    )


def _args(condition: ConditionEncoderConfig, *, n_mel: int, filters: int, layers: int) -> dict[str, Any]:
    return {
        "model_type": MODEL_TYPE,
        "preprocess": {"sample_rate": 24000, "hop_size": 256, "n_fft": 1024, "win_size": 1024, "n_mel": n_mel,
                       "f0_min": condition.f0_min, "f0_max": condition.f0_max},
        "model": {
            "condition_encoder": config_dict(condition),
            "transformer": {"type": SUPPORTED_TYPE, "input_dim": condition.output_dim, "output_dim": n_mel,
                            "n_heads": 2, "n_layers": layers, "filter_channels": filters, "dropout": 0.1},
        },
    }


#: The parts of the merged ``egs/svc/TransformerSVC/exp_config.json`` that the parsers read (recipe sizes).
RECIPE_ARGS: dict[str, Any] = _args(official_condition_encoder_config(), n_mel=100, filters=512, layers=6)
#: Tiny sizes, the recipe's I/O contract (24 kHz, hop 256, 100 mel bins) and the tiny front ends' feature sizes.
TINY_ARGS: dict[str, Any] = _args(tiny_condition_encoder_config(), n_mel=100, filters=32, layers=2)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class TransformerSVC(ConditionedSVC):
    """``[condition_encoder, conformer]`` (the checkpoint's ``0.`` / ``1.`` keys)."""

    def __init__(self, config: TransformerSVCConfig) -> None:
        super().__init__(config, Conformer(config.conformer))

    @torch.no_grad()
    def forward(
        self,
        frame_pitch: torch.Tensor,
        frame_uv: torch.Tensor,
        frame_energy: torch.Tensor,
        whisper_feat: torch.Tensor,
        contentvec_feat: torch.Tensor,
        spk_id: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Frame features -> normalised mel ``[B, T, n_mel]``.

        ``frame_pitch [B, T]`` Hz (0 = unvoiced), ``frame_uv [B, T]`` int (1 = UNVOICED),
        ``frame_energy [B, T]``, ``whisper_feat [B, T, whisper_dim]``, ``contentvec_feat [B, T,
        contentvec_dim]``, ``spk_id [B, 1]`` int, ``mask [B, T, 1]`` (1 = real frame; None: all real).
        Padded frames of the output are not zero (the projection's bias): trim to each item's length.
        """
        condition = self[0](frame_pitch, frame_uv, frame_energy, whisper_feat, contentvec_feat, spk_id)
        if mask is None:
            mask = torch.ones(*condition.shape[:2], 1, dtype=condition.dtype, device=condition.device)
        return self[1](condition, mask)


def build_transformer_svc(config: TransformerSVCConfig | None = None,
                          state_dict: Mapping[str, torch.Tensor] | None = None, *, seed: int = 0,
                          source: str = "state dict", device: str | torch.device = "cpu") -> TransformerSVC:
    """A TransformerSVC in eval mode (:func:`~models.svc.model_base.build_svc_model`): ``config`` None =
    :data:`TINY_ARGS`; a strict ``state_dict``, or seeded random weights."""
    config = parse_transformer_svc_config(TINY_ARGS) if config is None else config
    return build_svc_model(TransformerSVC(config), state_dict, seed=seed, source=source, device=device,
                           init_rules=(conformer_init_rule,))


def load_transformer_svc(folder: str | Path, device: str | torch.device = "cpu") -> TransformerSVC:
    """An Amphion TransformerSVC experiment folder (``args.json``, ``checkpoint/``, ``singers.json``)."""
    return load_svc_run(folder, parse_transformer_svc_config, build_transformer_svc,
                        lambda c: c.condition_encoder.singer_table_size, device)


def recipe_config() -> TransformerSVCConfig:
    """The recipe's full-size configuration (what a user-trained checkpoint has)."""
    return parse_transformer_svc_config(RECIPE_ARGS)

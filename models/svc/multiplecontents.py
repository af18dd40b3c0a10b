"""MultipleContentsSVC (Amphion's ``DiffWaveNetSVC``): frame features -> normalised mel by PNDM diffusion.

The network is ``nn.ModuleList([ConditionEncoder, DiffWaveNet])`` as ``DiffusionInference._build_model``
builds it, so checkpoint keys are ``0.*`` (:mod:`models.svc.condition_encoder`) and ``1.*``
(:mod:`models.svc.diffusion`), the layout of the official accelerate checkpoint
(``amphion/singing_voice_conversion``, ``vocalist_l1_contentvec+whisper/checkpoint/.../pytorch_model.bin``).

Inference: ``cond = model[0](features)``; ``mel = PNDM(model[1], cond)`` from ``x_T ~ N(0, I)``
``[B, T, n_mel]``, ``N + 9`` denoiser calls for ``N`` steps (default :data:`DEFAULT_PNDM_STEPS` = 1000,
the reference's), clamped to [-1, 1] after every step. The result is min-max normalised; the caller
de-normalises it with the target dataset's extrema (``(mel + 1) / 2 * (mel_max - mel_min + 1e-12) +
mel_min``), keeps ``target_len`` frames and runs the vocoder (Amphion's singing BigVGAN).

The official args.json gives the sizes (384 channels, 20 blocks), not the recipe's exp_config.json
(512, 40): the published file holds 31.2 M parameters, which only the former explains.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.svc.condition_encoder import (
    ConditionEncoderConfig,
    config_dict,
    official_condition_encoder_config,
    parse_condition_encoder_config,
    tiny_condition_encoder_config,
)
from models.svc.diffusion import (
    DEFAULT_PNDM_STEPS,
    DenoiserConfig,
    DiffWaveNet,
    PNDMSettings,
    ProgressCallback,
    check_pndm_steps,
    parse_denoiser_config,
    parse_pndm_settings,
    pndm_calls,
    pndm_sample,
)
from models.svc.experiment import check_condition_width, check_model_type
from models.svc.model_base import ConditionedSVC, build_svc_model, load_svc_run

__all__ = [
    "MODEL_TYPE",
    "MultipleContentsSVC",
    "MultipleContentsSVCConfig",
    "OFFICIAL_ARGS",
    "TINY_ARGS",
    "build_multiplecontents",
    "load_multiplecontents",
    "official_config",
    "parse_multiplecontents_config",
    "tiny_config",
]

MODEL_TYPE = "DiffWaveNetSVC"


@dataclass(frozen=True)
class MultipleContentsSVCConfig:
    condition_encoder: ConditionEncoderConfig
    denoiser: DenoiserConfig
    scheduler: PNDMSettings

    @property
    def n_mel(self) -> int:
        return self.denoiser.n_mel


def parse_multiplecontents_config(args: Mapping[str, Any]) -> MultipleContentsSVCConfig:
    """A merged ``DiffWaveNetSVC`` args.json (``preprocess``, ``model.condition_encoder``, ``model.diffusion``,
    ``inference.diffusion``) -> :class:`MultipleContentsSVCConfig`; ConfigError naming what is wrong."""
    check_model_type(args, MODEL_TYPE)
    condition = parse_condition_encoder_config(args)
    denoiser = parse_denoiser_config(args)
    check_condition_width(condition, denoiser.bidilconv.conditioner_size, "model.diffusion.bidilconv.conditioner_size")
    return MultipleContentsSVCConfig(condition, denoiser, parse_pndm_settings(args))


def _args(condition: ConditionEncoderConfig, *, n_mel: int, channels: int, blocks: int, raw_step_dim: int,
          step_hidden: int) -> dict[str, Any]:
    """The parts of an args.json the parser reads, in the official file's layout."""
    return {
        "model_type": MODEL_TYPE,
        "preprocess": {"sample_rate": 24000, "hop_size": 256, "n_fft": 1024, "win_size": 1024, "n_mel": n_mel,
                       "f0_min": condition.f0_min, "f0_max": condition.f0_max},
        "model": {
            "condition_encoder": config_dict(condition),
            "diffusion": {
                "model_type": "bidilconv",
                "bidilconv": {"base_channel": channels, "n_res_block": blocks, "conv_kernel_size": 3,
                              "dilation_cycle_length": 4, "conditioner_size": condition.output_dim},
                "step_encoder": {"dim_raw_embedding": raw_step_dim, "dim_hidden_layer": step_hidden,
                                 "activation": "SiLU", "num_layer": 2, "max_period": 10000},
                "scheduler": "ddpm",
                "scheduler_settings": {"num_train_timesteps": 1000, "beta_start": 1.0e-4, "beta_end": 0.02,
                                       "beta_schedule": "linear"},
            },
        },
        "inference": {"diffusion": {"scheduler": "pndm",
                                    "scheduler_settings": {"num_inference_timesteps": DEFAULT_PNDM_STEPS}}},
    }


#: The official ``vocalist_l1_contentvec+whisper/args.json`` as far as the parser reads it.
OFFICIAL_ARGS: dict[str, Any] = _args(official_condition_encoder_config(), n_mel=100, channels=384, blocks=20,
                                      raw_step_dim=128, step_hidden=512)
#: Tiny sizes with the official I/O contract (24 kHz, hop 256, 100 mel bins) and the tiny front ends' features.
TINY_ARGS: dict[str, Any] = _args(tiny_condition_encoder_config(), n_mel=100, channels=16, blocks=4,
                                  raw_step_dim=16, step_hidden=32)


def official_config() -> MultipleContentsSVCConfig:
    return parse_multiplecontents_config(OFFICIAL_ARGS)


def tiny_config() -> MultipleContentsSVCConfig:
    return parse_multiplecontents_config(TINY_ARGS)


class MultipleContentsSVC(ConditionedSVC):
    """``[condition_encoder, DiffWaveNet]`` (the checkpoint's ``0.`` / ``1.`` keys)."""

    def __init__(self, config: MultipleContentsSVCConfig) -> None:
        super().__init__(config, DiffWaveNet(config.denoiser))

    #: Inference steps when a request gives none (the reference's CLI default).
    default_steps = DEFAULT_PNDM_STEPS

    def check_steps(self, n_steps: int | None) -> int:
        """The step count a run will use (None: :attr:`default_steps`); DiffusionStepsError outside
        ``4..1000`` (diffusers' PNDM cannot run fewer than 4)."""
        return check_pndm_steps(self.default_steps if n_steps is None else n_steps, self.config.scheduler)

    def denoiser_calls(self, n_steps: int | None = None) -> int:
        """``on_step``'s total for ``n_steps`` (``n_steps + 9``); DiffusionStepsError when out of range."""
        return pndm_calls(self.check_steps(n_steps), self.config.scheduler)

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
        *,
        n_steps: int | None = None,
        noise: torch.Tensor | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        on_step: ProgressCallback | None = None,
    ) -> torch.Tensor:
        """Frame features -> normalised mel ``[B, T, n_mel]`` in [-1, 1].

        ``frame_pitch [B, T]`` Hz (0 = unvoiced), ``frame_uv [B, T]`` int (1 = UNVOICED),
        ``frame_energy [B, T]``, ``whisper_feat [B, T, whisper_dim]``, ``contentvec_feat [B, T,
        contentvec_dim]``, ``spk_id [B, 1]`` int. ``mask`` is accepted for a uniform signature and
        unused (the reference denoises padded frames too; trim each item to its length).
        ``n_steps`` PNDM steps (None: 1000, the reference's; 4..1000, DiffusionStepsError otherwise),
        ``on_step(call, n_steps + 9)`` after each denoiser call.
        Randomness: ``noise [B, T, n_mel]``, else ``seed`` / ``generator``, else the global RNG.
        """
        del mask  # not used by the reference's computation
        n_steps = self.check_steps(n_steps)  # before any work: a bad count is the caller's error
        cond = self[0](frame_pitch, frame_uv, frame_energy, whisper_feat, contentvec_feat, spk_id)
        return pndm_sample(self[1], cond, self.config.n_mel, n_steps=n_steps, settings=self.config.scheduler,
                           noise=noise, seed=seed, generator=generator, on_step=on_step)


def build_multiplecontents(config: MultipleContentsSVCConfig | None = None,
                           state_dict: Mapping[str, torch.Tensor] | None = None, *, seed: int = 0,
                           source: str = "state dict", device: str | torch.device = "cpu") -> MultipleContentsSVC:
    """A MultipleContentsSVC in eval mode (:func:`~models.svc.model_base.build_svc_model`): ``config``
    None = :data:`TINY_ARGS`; a strict ``state_dict``, or seeded random weights."""
    config = tiny_config() if config is None else config
    return build_svc_model(MultipleContentsSVC(config), state_dict, seed=seed, source=source, device=device)


def load_multiplecontents(folder: str | Path, device: str | torch.device = "cpu") -> MultipleContentsSVC:
    """An Amphion DiffWaveNetSVC experiment folder (``args.json``, ``checkpoint/<newest>/pytorch_model.bin``
    or ``model.safetensors``, ``singers.json``), e.g. the official ``vocalist_l1_contentvec+whisper``."""
    return load_svc_run(folder, parse_multiplecontents_config, build_multiplecontents,
                        lambda c: c.condition_encoder.singer_table_size, device)

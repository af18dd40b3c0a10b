"""DiffComoSVC (Amphion's ``ComoSVC``): a Conformer predicts a coarse mel mu, an EDM (Karras) diffusion
decoder conditioned on mu refines it. Two kinds of checkpoint, told apart by ``model.comosvc.distill``:

* **teacher** (``distill: false``): the Euler sampler over Karras noise levels from 80 to 0.002 and then 0,
  ``N + 1`` denoiser calls for ``N`` steps (default :data:`DEFAULT_TEACHER_STEPS` = 40, the recipe's
  ``inference.comosvc.inference_steps``);
* **student** (``distill: true``, consistency distillation): ONE call of the EMA denoiser at sigma 80,
  whatever the step count says (the reference's ``CT_sampler(t_steps=1)``).

The network is ``nn.ModuleList([ConditionEncoder, ComoSVCAcousticModel])`` (``ComoSVCInference._build_model``),
keys ``0.*`` and ``1.encoder.{conformer_encoder,projection}.*``, ``1.decoder.denoise_fn.*`` (a
:class:`~models.svc.diffusion.DiffWaveNet`), plus ``1.decoder.denoise_fn_ema.*`` and
``1.decoder.denoise_fn_pretrained.*`` in a student (the copies ``init_consistency_training`` makes; only
the EMA one samples, the other two are loaded because they are in the file).

Noise: the reference draws ``torch.randn(B, n_mel, T)`` once (``noise``, channel-first as drawn, so a seeded
generator gives the reference's draw); the sampler starts from ``(noise + mu) * 80``, mu scaled too. The
teacher's further per-step draws are multiplied by 0 (no churn) and are not made here. No published
weights: :func:`load_comosvc` reads a folder laid out like an Amphion training run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from models.core import checks
from models.core.configs import ConfigError
from models.svc.condition_encoder import (
    ConditionEncoderConfig,
    config_dict,
    official_condition_encoder_config,
    parse_condition_encoder_config,
    tiny_condition_encoder_config,
)
from models.svc.conformer import Conformer, ConformerConfig, conformer_init_rule, parse_conformer_config
from models.svc.diffusion import (
    DenoiserConfig,
    DiffusionStepsError,
    DiffWaveNet,
    ProgressCallback,
    initial_noise,
    parse_denoiser_config,
)
from models.svc.experiment import check_condition_width, check_model_type, require_section
from models.svc.model_base import ConditionedSVC, build_svc_model, load_svc_run

__all__ = [
    "ComoSVCAcousticModel",
    "ComoSVCConfig",
    "DEFAULT_TEACHER_STEPS",
    "DiffComoSVC",
    "EDMConfig",
    "EDMDecoder",
    "MAX_TEACHER_STEPS",
    "MODEL_TYPE",
    "RECIPE_ARGS",
    "STUDENT_SIGMA",
    "TINY_ARGS",
    "build_comosvc",
    "karras_sigmas",
    "load_comosvc",
    "parse_comosvc_config",
    "recipe_config",
    "tiny_config",
]

MODEL_TYPE = "DiffComoSVC"

#: The recipe's ``inference.comosvc.inference_steps`` (teacher only).
DEFAULT_TEACHER_STEPS = 40
#: Teacher step counts accepted (the Karras grid needs N >= 1; above 1000 nothing changes audibly and the
#: cost grows linearly).
MIN_TEACHER_STEPS = 1
MAX_TEACHER_STEPS = 1000
#: The student's single noise level: hard-coded in the reference's CT_sampler, not read from sigma_max.
STUDENT_SIGMA = 80.0
#: The teacher's noise grid: the reference calls edm_sampler with its default arguments, so these are
#: fixed whatever ``model.comosvc`` says (the preconditioning alone reads sigma_min / sigma_data).
KARRAS_SIGMA_MIN = 0.002
KARRAS_SIGMA_MAX = 80.0
KARRAS_RHO = 7.0


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EDMConfig:
    """The preconditioning constants of ``model.comosvc`` (P_mean / P_std / sigma_max / rho / n_timesteps
    only shape training)."""

    sigma_data: float = 0.5
    sigma_min: float = 0.002


@dataclass(frozen=True)
class ComoSVCConfig:
    condition_encoder: ConditionEncoderConfig
    encoder: ConformerConfig
    denoiser: DenoiserConfig
    edm: EDMConfig
    distill: bool
    inference_steps: int = DEFAULT_TEACHER_STEPS

    @property
    def n_mel(self) -> int:
        return self.denoiser.n_mel


def _positive_float(section: Mapping[str, Any], key: str, default: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"model.comosvc.{key}: expected a positive number, got {value!r}")
    return float(value)


def parse_comosvc_config(args: Mapping[str, Any]) -> ComoSVCConfig:
    """A merged ``DiffComoSVC`` args.json (``preprocess``, ``model.condition_encoder``, ``model.comosvc``,
    ``model.diffusion``, ``inference.comosvc``) -> :class:`ComoSVCConfig`; ConfigError naming what is wrong."""
    check_model_type(args, MODEL_TYPE)
    model = require_section(args, "model", "args.json")
    section = require_section(model, "comosvc", "model")
    condition = parse_condition_encoder_config(args)
    encoder = parse_conformer_config(section, "model.comosvc")
    denoiser = parse_denoiser_config(args)
    check_condition_width(condition, encoder.input_dim, "model.comosvc.input_dim")
    # mu is both the decoder's mean and its conditioner: all three widths are the mel's.
    widths = {"preprocess.n_mel": denoiser.n_mel, "model.comosvc.output_dim": encoder.output_dim,
              "model.diffusion.bidilconv.conditioner_size": denoiser.bidilconv.conditioner_size}
    if len(set(widths.values())) != 1:
        raise ConfigError(f"DiffComoSVC needs equal mel widths, got {widths}")
    inference = args.get("inference")
    inference = inference.get("comosvc") if isinstance(inference, Mapping) else None
    steps = inference.get("inference_steps", DEFAULT_TEACHER_STEPS) if isinstance(inference, Mapping) \
        else DEFAULT_TEACHER_STEPS
    if isinstance(steps, bool) or not isinstance(steps, int) or not MIN_TEACHER_STEPS <= steps <= MAX_TEACHER_STEPS:
        raise ConfigError(f"inference.comosvc.inference_steps must be an integer in "
                          f"{MIN_TEACHER_STEPS}..{MAX_TEACHER_STEPS}, got {steps!r}")
    distill = section.get("distill", False)
    if not isinstance(distill, bool):
        raise ConfigError(f"model.comosvc.distill must be true or false, got {distill!r}")
    edm = EDMConfig(sigma_data=_positive_float(section, "sigma_data", EDMConfig.sigma_data),
                    sigma_min=_positive_float(section, "sigma_min", EDMConfig.sigma_min))
    return ComoSVCConfig(condition, encoder, denoiser, edm, distill, steps)


def _args(condition: ConditionEncoderConfig, *, n_mel: int, filters: int, layers: int, channels: int,
          blocks: int, raw_step_dim: int, step_hidden: int, distill: bool) -> dict[str, Any]:
    """The parts of an args.json the parser reads, in the recipe's layout."""
    return {
        "model_type": MODEL_TYPE,
        "preprocess": {"sample_rate": 24000, "hop_size": 256, "n_fft": 1024, "win_size": 1024, "n_mel": n_mel,
                       "f0_min": condition.f0_min, "f0_max": condition.f0_max},
        "model": {
            "condition_encoder": config_dict(condition),
            "comosvc": {"distill": distill, "input_dim": condition.output_dim, "output_dim": n_mel, "n_heads": 2,
                        "n_layers": layers, "filter_channels": filters, "dropout": 0.1, "P_mean": -1.2, "P_std": 1.2,
                        "sigma_data": 0.5, "sigma_min": 0.002, "sigma_max": 80, "rho": 7, "n_timesteps": 40},
            "diffusion": {
                "model_type": "bidilconv",
                "bidilconv": {"base_channel": channels, "n_res_block": blocks, "conv_kernel_size": 3,
                              "dilation_cycle_length": 4, "conditioner_size": n_mel},
                "step_encoder": {"dim_raw_embedding": raw_step_dim, "dim_hidden_layer": step_hidden,
                                 "activation": "SiLU", "num_layer": 2, "max_period": 10000},
            },
        },
        "inference": {"comosvc": {"inference_steps": DEFAULT_TEACHER_STEPS}},
    }


#: ``egs/svc/DiffComoSVC/exp_config.json`` merged over its bases, as far as the parser reads it, per kind
#: (``"teacher"``, ``"student"``). The recipe's condition encoder has the MultipleContentsSVC release's sizes.
RECIPE_ARGS: dict[str, dict[str, Any]] = {
    kind: _args(official_condition_encoder_config(), n_mel=100, filters=512, layers=6, channels=384, blocks=20,
                raw_step_dim=128, step_hidden=512, distill=kind == "student")
    for kind in ("teacher", "student")
}
#: Tiny sizes with the recipe's I/O contract (24 kHz, hop 256, 100 mel bins) and the tiny front ends' features.
TINY_ARGS: dict[str, dict[str, Any]] = {
    kind: _args(tiny_condition_encoder_config(), n_mel=100, filters=32, layers=2, channels=16, blocks=4,
                raw_step_dim=16, step_hidden=32, distill=kind == "student")
    for kind in ("teacher", "student")
}


def recipe_config(kind: str = "teacher") -> ComoSVCConfig:
    return parse_comosvc_config(RECIPE_ARGS[kind])


def tiny_config(kind: str = "teacher") -> ComoSVCConfig:
    return parse_comosvc_config(TINY_ARGS[kind])


# ---------------------------------------------------------------------------------------------
# The EDM decoder
# ---------------------------------------------------------------------------------------------


def karras_sigmas(n_steps: int) -> torch.Tensor:
    """The teacher's noise levels, float32 ``[n_steps + 2]``: ``n_steps + 1`` values spaced uniformly in
    ``sigma^(1/rho)`` from 80 down to 0.002, then 0 (computed in float32 as the reference does)."""
    ramp = torch.arange(n_steps + 1) / n_steps
    high, low = KARRAS_SIGMA_MAX ** (1 / KARRAS_RHO), KARRAS_SIGMA_MIN ** (1 / KARRAS_RHO)
    sigmas = (high + ramp * (low - high)) ** KARRAS_RHO
    return torch.cat([sigmas, sigmas.new_zeros(1)])


Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class EDMDecoder(nn.Module):
    """The reference's ``Consistency`` at inference: the denoiser(s) and the two samplers. Tensors are
    ``[B, T, n_mel]`` here (the reference works channel-first; the arithmetic is elementwise)."""

    def __init__(self, denoiser: DenoiserConfig, edm: EDMConfig, distill: bool) -> None:
        super().__init__()
        self.edm = edm
        self.distill = distill
        self.denoise_fn = DiffWaveNet(denoiser)
        if distill:
            self.denoise_fn_ema = DiffWaveNet(denoiser)
            self.denoise_fn_pretrained = DiffWaveNet(denoiser)

    @property
    def sampling_denoiser(self) -> DiffWaveNet:
        """The network the sampler calls: the teacher's own, the student's EMA copy."""
        return self.denoise_fn_ema if self.distill else self.denoise_fn

    def precondition(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor,
                     denoiser: Denoiser | None = None) -> torch.Tensor:
        """EDM's denoised estimate ``c_skip x + c_out F(c_in x, ln(sigma)/4, cond)``; ``sigma`` one per
        item (any shape of B elements), ``x`` / ``cond`` ``[B, T, n_mel]``. ``c_out`` uses
        ``sigma - sigma_min`` (consistency-model boundary condition: the identity at sigma_min)."""
        denoiser = self.sampling_denoiser if denoiser is None else denoiser
        sd, sigma = self.edm.sigma_data, sigma.reshape(-1, 1, 1)
        c_skip = sd**2 / (sigma**2 + sd**2)
        c_out = (sigma - self.edm.sigma_min) * sd / (sigma**2 + sd**2).sqrt()
        c_in = 1 / (sd**2 + sigma**2).sqrt()
        c_noise = sigma.log().reshape(-1) / 4
        return c_skip * x + c_out * denoiser(c_in * x, c_noise, cond)

    def teacher_sample(self, start: torch.Tensor, mu: torch.Tensor, n_steps: int,
                       on_step: ProgressCallback | None = None) -> torch.Tensor:
        """Euler steps over :func:`karras_sigmas` from ``x = start * 80`` (``start = noise + mu``);
        ``n_steps + 1`` calls, the last one landing on sigma 0."""
        sigmas = karras_sigmas(n_steps).to(start.device)
        x = start * sigmas[0]
        batch, total = x.shape[0], len(sigmas) - 1
        for i in range(total):
            sigma, sigma_next = sigmas[i].expand(batch).reshape(batch, 1, 1), sigmas[i + 1]
            slope = (x - self.precondition(x, sigma, mu, self.denoise_fn)) / sigma
            x = x + (sigma_next - sigma) * slope
            if on_step is not None:
                on_step(i + 1, total)
        return x

    def student_sample(self, start: torch.Tensor, mu: torch.Tensor,
                       on_step: ProgressCallback | None = None) -> torch.Tensor:
        """One consistency step: the EMA denoiser's estimate at sigma 80 from ``start * 80``."""
        sigma = start.new_full((start.shape[0], 1, 1), STUDENT_SIGMA)
        out = self.precondition(start * STUDENT_SIGMA, sigma, mu, self.denoise_fn_ema)
        if on_step is not None:
            on_step(1, 1)
        return out


class ComoSVCAcousticModel(nn.Module):
    """The reference's ``ComoSVC``: ``encoder`` (Conformer -> mu) and ``decoder`` (:class:`EDMDecoder`)."""

    def __init__(self, config: ComoSVCConfig) -> None:
        super().__init__()
        self.encoder = Conformer(config.encoder)
        self.decoder = EDMDecoder(config.denoiser, config.edm, config.distill)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


class DiffComoSVC(ConditionedSVC):
    """``[condition_encoder, ComoSVCAcousticModel]`` (the checkpoint's ``0.`` / ``1.`` keys)."""

    def __init__(self, config: ComoSVCConfig) -> None:
        super().__init__(config, ComoSVCAcousticModel(config))

    @property
    def is_student(self) -> bool:
        return self.config.distill

    @property
    def default_steps(self) -> int:
        """Steps when a request gives none: the run's ``inference_steps`` (teacher), 1 (student)."""
        return 1 if self.is_student else self.config.inference_steps

    def check_steps(self, n_steps: int | None) -> int:
        """The step count a run will use (None: :attr:`default_steps`); DiffusionStepsError when the
        sampler cannot run it (the student only samples in one step)."""
        if n_steps is None:
            return self.default_steps
        if self.is_student:
            if isinstance(n_steps, bool) or n_steps != 1:
                raise DiffusionStepsError(f"diffusion_steps must be 1 for this model (a consistency student "
                                          f"samples in one step), got {n_steps!r}")
            return 1
        return checks.integer(n_steps, "diffusion_steps", DiffusionStepsError, MIN_TEACHER_STEPS, MAX_TEACHER_STEPS)

    def denoiser_calls(self, n_steps: int | None = None) -> int:
        """``on_step``'s total: ``n_steps + 1`` (teacher), 1 (student)."""
        n = self.check_steps(n_steps)
        return 1 if self.is_student else n + 1

    def mu(self, cond: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The Conformer's coarse mel ``[B, T, n_mel]`` (not masked after the projection)."""
        return self[1].encoder(cond, mask)

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
        """Frame features -> normalised mel ``[B, T, n_mel]`` (the decoder's output, not clamped).

        Features as for MultipleContentsSVC (``frame_uv`` 1 = UNVOICED, ``spk_id [B, 1]``); ``mask [B, T,
        1]`` (1 = real frame; None: all real) masks the Conformer; the decoder runs on every frame, so
        trim each item to its length. ``n_steps``: see :meth:`check_steps`; ``on_step(call, total)``.
        Randomness: ``noise [B, n_mel, T]`` (the reference's channel-first draw), else ``seed`` /
        ``generator``, else the global RNG.
        """
        n = self.check_steps(n_steps)
        cond = self[0](frame_pitch, frame_uv, frame_energy, whisper_feat, contentvec_feat, spk_id)
        if mask is None:
            mask = torch.ones(*cond.shape[:2], 1, dtype=cond.dtype, device=cond.device)
        mu = self.mu(cond, mask)
        batch, frames, n_mel = mu.shape
        start = initial_noise((batch, n_mel, frames), mu, noise, seed, generator).transpose(1, 2) + mu
        decoder = self[1].decoder
        if self.is_student:
            return decoder.student_sample(start, mu, on_step)
        return decoder.teacher_sample(start, mu, n, on_step)


# ---------------------------------------------------------------------------------------------
# Building and loading
# ---------------------------------------------------------------------------------------------


def build_comosvc(config: ComoSVCConfig | None = None, state_dict: Mapping[str, torch.Tensor] | None = None, *,
                  seed: int = 0, source: str = "state dict", device: str | torch.device = "cpu") -> DiffComoSVC:
    """A DiffComoSVC in eval mode (:func:`~models.svc.model_base.build_svc_model`): ``config`` None = the
    tiny teacher; a strict ``state_dict``, or seeded random weights (a student's three denoisers each
    get their own draws)."""
    config = tiny_config() if config is None else config
    return build_svc_model(DiffComoSVC(config), state_dict, seed=seed, source=source, device=device,
                           init_rules=(conformer_init_rule,))


def load_comosvc(folder: str | Path, device: str | torch.device = "cpu") -> DiffComoSVC:
    """An Amphion DiffComoSVC training run (``args.json``; ``checkpoint/<newest epoch-..._step-..._loss-...>/``
    ``model.safetensors`` or ``pytorch_model.bin``; ``singers.json``). Teacher or student as its
    ``model.comosvc.distill`` says. A missing file is a CheckpointError naming it; the deployment
    resolves the folder (``models.svc.official``) and answers 503 with what is missing."""
    return load_svc_run(folder, parse_comosvc_config, build_comosvc,
                        lambda c: c.condition_encoder.singer_table_size, device)

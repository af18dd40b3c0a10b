"""Noro's voice-conversion model (Amphion's ``Noro_VCmodel``) and how it is built and loaded.

:class:`NoroVC` holds the three parts under the checkpoint's names: ``reference_encoder``
(:mod:`models.noro.reference_encoder`), ``diffusion.diff_estimator``
(:mod:`models.noro.estimator`) and ``content_f0_enc`` (LayerNorm over content + pitch, then a k=3
Conv1d over time). :meth:`NoroVC.generate` is the reference's ``inference``: reference embedding,
condition embedding, then the sampler of :mod:`models.noro.sampler` from injected noise.

:func:`build_noro_model` makes a tiny seeded model (or loads a state dict strictly);
:func:`load_noro_model` reads the official ``model.safetensors``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from models.core.checkpoints import CheckpointError, load_exact, load_state_dict_file
from models.core.random_init import Draws, init_random_weights
from models.noro.configs import NoroConfig
from models.noro.estimator import WaveNetEstimator
from models.noro.reference_encoder import ReferenceEncoder
from models.noro.sampler import StepFn, VPSchedule, euler_sample

__all__ = ["NoroVC", "build_noro_model", "load_noro_model", "noro_state_shapes"]


class ChannelsFirst(nn.Module):
    """``[B, T, C] <-> [B, C, T]`` (no parameters; keeps the checkpoint's ``content_f0_enc.N`` indices)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


class Diffusion(nn.Module):
    """The estimator and the schedule it is sampled with (``diffusion.*`` in the checkpoint)."""

    def __init__(self, cfg: NoroConfig) -> None:
        super().__init__()
        d = cfg.diffusion
        self.diff_estimator = WaveNetEstimator(d.estimator)
        self.schedule = VPSchedule(beta_min=d.beta_min, beta_max=d.beta_max, sigma=d.sigma)


class NoroVC(nn.Module):
    def __init__(self, cfg: NoroConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.reference_encoder = ReferenceEncoder(cfg.reference_encoder)
        self.diffusion = Diffusion(cfg)
        width = cfg.content_dim + 1  # + 1: the normalised pitch rides along as one more channel
        self.content_f0_enc = nn.Sequential(
            nn.LayerNorm(width), ChannelsFirst(), nn.Conv1d(width, cfg.condition_dim, 3, padding=1), ChannelsFirst()
        )

    @property
    def n_mels(self) -> int:
        return self.cfg.n_mels

    def condition(self, content: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
        """``content`` ``[B, T, content_dim]`` (k-means centre vectors), ``pitch`` ``[B, T]`` (normalised)
        -> ``[B, T, condition_dim]``."""
        return self.content_f0_enc(torch.cat([content, pitch[:, :, None]], dim=-1))

    def speaker(self, mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Reference mel ``[B, T_ref, n_mel]`` + mask -> speaker queries ``[B, Nq, H]``."""
        return self.reference_encoder(mel, mask)[0]

    def estimate(self, x: torch.Tensor, condition: torch.Tensor, speaker: torch.Tensor,
                 t: torch.Tensor) -> torch.Tensor:
        return self.diffusion.diff_estimator(x, condition, speaker, t)

    @torch.inference_mode()
    def generate(self, content: torch.Tensor, pitch: torch.Tensor, reference_mel: torch.Tensor,
                 reference_mask: torch.Tensor, noise: torch.Tensor, *, steps: int, temperature: float,
                 on_step: StepFn | None = None, trace: list | None = None) -> torch.Tensor:
        """The reference's ``inference``: mel ``[B, T, n_mel]`` (frames first, natural-log, 16 kHz / hop 200).

        ``noise`` is the ``torch.randn(B, T, n_mel)`` draw the reference makes; ``temperature`` is the
        request's ``sigma`` (it divides the noise). Batch item ``b`` carries the positional offset of
        batch position ``b`` in the reference encoder (see :class:`BatchIndexedSinusoid`)."""
        speaker = self.speaker(reference_mel, reference_mask)
        condition = self.condition(content, pitch)
        expected = (condition.shape[0], condition.shape[1], self.n_mels)
        if tuple(noise.shape) != expected:
            raise ValueError(f"noise must have shape {list(expected)}, got {list(noise.shape)}")
        return euler_sample(lambda x, t: self.estimate(x, condition, speaker, t), self.diffusion.schedule,
                            noise.to(condition.dtype), steps=steps, temperature=temperature, on_step=on_step,
                            trace=trace)


# ---------------------------------------------------------------------------------------------
# Building and loading
# ---------------------------------------------------------------------------------------------


def _attention_in_projection(module: nn.Module, draws: Draws) -> bool:
    """Tiny builds: the attention's packed q/k/v projection like a Linear (fan-in uniform); its
    ``out_proj`` is a Linear and gets the common treatment when visited."""
    if not isinstance(module, nn.MultiheadAttention):
        return False
    bound = 1.0 / math.sqrt(module.in_proj_weight.shape[1])
    draws.uniform_(module.in_proj_weight, bound)
    draws.uniform_(module.in_proj_bias, bound)
    return True


def _construct(cfg: NoroConfig, device: str | torch.device) -> NoroVC:
    # Module constructors draw their default init from the global RNG; keep the caller's stream intact.
    with torch.random.fork_rng(devices=[]), torch.device(device):
        return NoroVC(cfg)


def noro_state_shapes(cfg: NoroConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the checkpoint a model of ``cfg`` loads (computed on the meta device)."""
    return {k: tuple(v.shape) for k, v in _construct(cfg, "meta").state_dict().items()}


def build_noro_model(cfg: NoroConfig, state_dict: Mapping[str, torch.Tensor] | None = None, *, seed: int = 0,
                     source: str = "Noro state dict", device: str | torch.device = "cpu") -> NoroVC:
    """A model of ``cfg``: seeded random weights (``state_dict`` None) or ``state_dict`` loaded strictly
    (:class:`CheckpointError` naming missing / unexpected / mis-shaped keys). In eval mode, no grads."""
    if state_dict is None:
        model = _construct(cfg, "cpu")
        init_random_weights(model, seed, rules=(_attention_in_projection,))
    else:
        model = _construct(cfg, "meta")
        load_exact(model, state_dict, source, assign=True)
    return model.to(device).eval().requires_grad_(False)


def load_noro_model(path: str | Path, cfg: NoroConfig, *, device: str | torch.device = "cpu") -> NoroVC:
    """The official checkpoint (``model.safetensors``, a bare state dict; ``.pt`` / ``.bin`` read
    without pickled code), loaded strictly into a model of ``cfg``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Noro checkpoint not found: {path} (expected the release's model.safetensors)")
    return build_noro_model(cfg, load_state_dict_file(path), source=str(path), device=device)

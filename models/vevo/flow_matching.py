"""Vevo's flow-matching acoustic transformer: content-style tokens + a timbre-reference mel -> mel.

:class:`VevoFlowMatching` (a :class:`MelDiffLlama` estimator over ``[prompt mel | x_t]``) samples with
Euler steps at midpoints and classifier-free guidance (:meth:`VevoFlowMatching.reverse_diffusion`,
:meth:`VevoFlowMatching.generate`); the result is the NORMALISED 24 kHz mel (hop 480, 128 bins) the
vocoder takes. ``build_fm_model`` / ``load_fm_model`` build or strictly load one (Vevo's
``acoustic_modeling/Vq8192ToMels/model.safetensors``; Vevo1.5's variant is in ``models.vevosing``).
The sampler step by step: ``models/vevo/README.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from models.blocks.diff_llama import DiffLlama, build_or_load
from models.blocks.masked_generation import apply_cfg
from models.core.checkpoints import load_state_dict_file
from models.vevo.fm_ar_configs import FMConfig, official_checkpoint, parse_fm_config, read_config_file

__all__ = [
    "DEFAULT_CFG",
    "DEFAULT_RESCALE_CFG",
    "DEFAULT_STEPS",
    "MAX_STEPS",
    "FlowStep",
    "MelDiffLlama",
    "VevoFlowMatching",
    "build_fm_model",
    "load_fm_model",
    "read_fm_config",
]

ProgressCallback = Callable[[int, int], None]

# The Vevo / Vevo1.5 pipelines' settings.
DEFAULT_STEPS = 32
DEFAULT_CFG = 1.0
DEFAULT_RESCALE_CFG = 0.75
#: Upper bound on ``n_timesteps`` accepted by the sampler (the service's limit).
MAX_STEPS = 128


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    # Keys "0" and "2" (Linear, SiLU, Linear), as in the checkpoints.
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.SiLU(), nn.Linear(d_hidden, d_out))


class MelDiffLlama(DiffLlama):
    """DiffLlama that reads and writes mel frames: ``mel_out_mlp(DiffLlama(mel_mlp(x), t, cond))``."""

    def __init__(self, mel_dim: int, hidden_size: int, num_heads: int, num_layers: int) -> None:
        super().__init__(hidden_size, num_heads, num_layers)
        self.mel_dim = mel_dim
        self.mel_mlp = _mlp(mel_dim, 4 * hidden_size, hidden_size)
        self.mel_out_mlp = _mlp(hidden_size, 4 * hidden_size, mel_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, cond: torch.Tensor,
                x_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (B, L, mel), ``cond`` (B, L, H), ``t`` (B,) or scalar, ``x_mask`` (B, L) 1 = keep.
        Returns the predicted flow (B, L, mel); padded positions are computed too."""
        return self.mel_out_mlp(super().forward(self.mel_mlp(x), t, cond, x_mask))


@dataclass
class FlowStep:
    """The state at the start of one Euler step (collected when ``trace`` is given)."""

    t: torch.Tensor   # (B,) time passed to the estimator
    x: torch.Tensor   # (B, T, mel) x_t of the target frames


class VevoFlowMatching(nn.Module):
    """Vevo's ``FlowMatchingTransformer`` (inference): ``cond_emb`` + :class:`MelDiffLlama`."""

    def __init__(self, config: FMConfig) -> None:
        super().__init__()
        self.config = config
        self.mel_dim = config.mel_dim
        self.hidden_size = config.hidden_size
        self.cond_emb = nn.Embedding(config.cond_codebook_size, config.hidden_size)
        self.diff_estimator = MelDiffLlama(config.mel_dim, config.hidden_size, config.num_heads, config.num_layers)

    # -- condition --------------------------------------------------------------------------

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Content-style ids (B, N) -> condition (B, N, H) at the mel frame rate."""
        if codes.dim() != 2 or codes.is_floating_point():
            raise ValueError(f"codes must be integer ids of shape (B, N), got {tuple(codes.shape)} {codes.dtype}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.config.cond_codebook_size):
            raise ValueError(f"codes must lie in [0, {self.config.cond_codebook_size}), "
                             f"got [{int(codes.min())}, {int(codes.max())}]")
        return self.cond_emb(codes)

    # -- sampling ---------------------------------------------------------------------------

    def _initial_noise(self, shape: tuple[int, ...], like: torch.Tensor, noise: torch.Tensor | None,
                       seed: int | None, generator: torch.Generator | None) -> torch.Tensor:
        if noise is not None:
            if seed is not None or generator is not None:
                raise ValueError("give noise or a seed/generator, not both")
            if tuple(noise.shape) != shape:
                raise ValueError(f"noise has shape {tuple(noise.shape)}, the sampler needs {shape}")
            return noise.to(device=like.device, dtype=like.dtype)
        if seed is not None and generator is not None:
            raise ValueError("give a seed or a generator, not both")
        if seed is not None:
            generator = torch.Generator(device=like.device).manual_seed(int(seed))
        if generator is None:
            return torch.randn(shape, device=like.device, dtype=like.dtype)
        return torch.randn(shape, generator=generator, device=generator.device, dtype=like.dtype).to(like.device)

    @torch.inference_mode()
    def reverse_diffusion(self, cond: torch.Tensor, prompt: torch.Tensor, *, n_timesteps: int = DEFAULT_STEPS,
                          cfg: float = DEFAULT_CFG, rescale_cfg: float = DEFAULT_RESCALE_CFG,
                          x_mask: torch.Tensor | None = None, prompt_mask: torch.Tensor | None = None,
                          noise: torch.Tensor | None = None, seed: int | None = None,
                          generator: torch.Generator | None = None, on_step: ProgressCallback | None = None,
                          trace: list[FlowStep] | None = None) -> torch.Tensor:
        """Mel (B, T, mel) of the target frames, T = cond frames - prompt frames.

        ``cond`` (B, P+T, H): the condition of prompt and target frames (:meth:`embed_codes`);
        ``prompt`` (B, P, mel): the normalised mel of the timbre reference (P may be 0);
        ``x_mask`` (B, T) / ``prompt_mask`` (B, P): 1 = real frame (None: all real).
        Randomness: ``noise`` (B, T, mel) as the initial z, else ``seed`` / ``generator``, else
        torch's global RNG. ``on_step(step, n_timesteps)`` after each step (step = 1 .. N).
        """
        n_timesteps = int(n_timesteps)
        if not 1 <= n_timesteps <= MAX_STEPS:
            raise ValueError(f"n_timesteps must be in 1..{MAX_STEPS}, got {n_timesteps}")
        if cond.dim() != 3 or cond.shape[-1] != self.hidden_size:
            raise ValueError(f"cond must be (B, L, {self.hidden_size}), got {tuple(cond.shape)}")
        if prompt.dim() != 3 or prompt.shape[0] != cond.shape[0] or prompt.shape[-1] != self.mel_dim:
            raise ValueError(f"prompt must be (B={cond.shape[0]}, P, {self.mel_dim}), got {tuple(prompt.shape)}")
        batch, n_prompt = prompt.shape[:2]
        n_target = cond.shape[1] - n_prompt
        if n_target < 1:
            raise ValueError(f"the condition ({cond.shape[1]} frames) must be longer than the prompt ({n_prompt})")
        ones = cond.new_ones
        x_mask = ones(batch, n_target) if x_mask is None else x_mask
        prompt_mask = ones(batch, n_prompt) if prompt_mask is None else prompt_mask
        full_mask = torch.cat([prompt_mask.to(cond.dtype), x_mask.to(cond.dtype)], dim=1)
        prompt = prompt.to(cond.dtype)
        x = self._initial_noise((batch, n_target, self.mel_dim), cond, noise, seed, generator)
        h = 1.0 / n_timesteps
        zero_cond = cond.new_zeros(batch, n_target, self.hidden_size) if cfg > 0 else None
        for i in range(n_timesteps):
            t = torch.full((batch,), (i + 0.5) * h, dtype=cond.dtype, device=cond.device)
            if trace is not None:
                trace.append(FlowStep(t.clone(), x.clone()))
            flow = self.diff_estimator(torch.cat([prompt, x], dim=1), t, cond, full_mask)[:, n_prompt:]
            if zero_cond is not None:
                uncond = self.diff_estimator(x, t, zero_cond, x_mask)
                flow = apply_cfg(flow, uncond, cfg, rescale_cfg)
            x = x + flow * h
            if on_step is not None:
                on_step(i + 1, n_timesteps)
        return x

    def generate(self, codes: torch.Tensor, prompt_mel: torch.Tensor, **kwargs) -> torch.Tensor:
        """The pipeline's FM stage: ``codes`` (B, P+T) = [timbre-reference ids | source or AR ids]
        (50 Hz vq8192), ``prompt_mel`` (B, P', mel) the timbre reference's normalised mel; returns the
        mel (B, P+T-P', mel). Keyword arguments as :meth:`reverse_diffusion`."""
        return self.reverse_diffusion(self.embed_codes(codes), prompt_mel, **kwargs)


# ---------------------------------------------------------------------------------------------
# Building and loading
# ---------------------------------------------------------------------------------------------


def read_fm_config(config: FMConfig | dict | str | Path, family: str) -> FMConfig:
    """An :class:`FMConfig` from a config object, a parsed JSON object or a JSON file."""
    if isinstance(config, FMConfig):
        if config.family != family:
            raise ValueError(f"a {config.family} FM configuration cannot build the {family} model")
        return config
    if isinstance(config, dict):
        return parse_fm_config(config, family)
    return parse_fm_config(read_config_file(config), family)


def build_fm_model(config: FMConfig, state_dict: dict[str, torch.Tensor] | None = None, *,
                   source: str = "FM checkpoint", seed: int = 0, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> VevoFlowMatching:
    """A :class:`VevoFlowMatching` in eval mode: ``state_dict`` loaded strictly, else seeded random
    weights (the tiny profile)."""
    if config.family != "vevo":
        raise ValueError("Vevo1.5 FM configurations build models.vevosing.flow_matching.VevoSingFlowMatching")
    return build_or_load(lambda: VevoFlowMatching(config), state_dict, source=source, seed=seed, device=device,
                         dtype=dtype)


def load_fm_model(weights: str | Path, config: FMConfig | dict | str | Path | None = None, *,
                  device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> VevoFlowMatching:
    """Vevo's FM from ``model.safetensors`` or a folder laid out like ``amphion/Vevo``
    (``acoustic_modeling/Vq8192ToMels/model.safetensors``); ``config`` None = the official one."""
    entry = official_checkpoint("Vq8192ToMels", FMConfig)
    path = Path(weights)
    if path.is_dir():
        path = path / entry.weights_file
    cfg = entry.config if config is None else read_fm_config(config, "vevo")
    assert isinstance(cfg, FMConfig)
    return build_fm_model(cfg, load_state_dict_file(path), source=str(path), device=device, dtype=dtype)

"""MultipleContentsSVC's acoustic mapper: the BiDilConv (DiffWave-style) noise predictor that Amphion
calls ``DiffusionWrapper``, and the PNDM loop its inference runs it in.

The denoiser (:class:`DiffWaveNet`) maps a noisy normalised mel ``[B, T, n_mel]``, a diffusion step
per item ``[B]`` and a conditioner ``[B, T, conditioner_size]`` to a prediction of the same shape
as the mel (the noise for MultipleContentsSVC, the EDM network output ``F`` for DiffComoSVC, which
reuses it). Submodule names follow the reference (``diff_encoder.out.*``, ``neural_network.input.*``,
``...residual_blocks.N.gau.{conv,context_proj}``, ``...out_proj``) so official checkpoints load as
they are.

The loop (:func:`pndm_sample`) is diffusers' :class:`~diffusers.PNDMScheduler` used as the reference
uses it: Runge-Kutta warm-up then linear multistep, one denoiser call per scheduler timestep
(``N + 9`` calls for ``N`` inference steps), the sample clamped to ``[-1, 1]`` after every update.
diffusers cannot run fewer than :data:`MIN_PNDM_STEPS` steps; :func:`check_pndm_steps` refuses them
with :class:`DiffusionStepsError` before the scheduler fails with a broadcast error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn

from models.core import checks
from models.core.configs import ConfigError

__all__ = [
    "BiDilConv",
    "BiDilConvConfig",
    "DEFAULT_PNDM_STEPS",
    "DenoiserConfig",
    "DiffWaveNet",
    "DiffusionStepsError",
    "MIN_PNDM_STEPS",
    "PNDM_EXTRA_CALLS",
    "PNDMSettings",
    "ProgressCallback",
    "StepEncoder",
    "StepEncoderConfig",
    "check_pndm_steps",
    "initial_noise",
    "make_pndm_scheduler",
    "parse_denoiser_config",
    "parse_pndm_settings",
    "pndm_calls",
    "pndm_sample",
    "pndm_timesteps",
]

ProgressCallback = Callable[[int, int], None]

#: The reference's inference step count: ``bins/svc/inference.py --diffusion_inference_steps`` defaults
#: to 1000 and the recipe does not override it (args.json's ``num_inference_timesteps`` is dropped).
DEFAULT_PNDM_STEPS = 1000
#: diffusers' PNDM builds its Runge-Kutta warm-up from the last 4 timesteps; with fewer it fails.
MIN_PNDM_STEPS = 4
#: The warm-up costs 12 calls for the first 3 steps: N steps -> N + 9 denoiser calls.
PNDM_EXTRA_CALLS = 9
#: Only the PNDM inference scheduler is implemented (the official checkpoint's).
SUPPORTED_INFERENCE_SCHEDULER = "pndm"


class DiffusionStepsError(ValueError):
    """A diffusion step count the sampler cannot run; the message is safe to show users (a served
    route answers 422)."""


# ---------------------------------------------------------------------------------------------
# Configuration (Amphion's args.json: preprocess.n_mel, model.diffusion)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepEncoderConfig:
    """``model.diffusion.step_encoder``: sinusoidal step embedding then an MLP (reference defaults)."""

    dim_raw_embedding: int = 128
    dim_hidden_layer: int = 512
    activation: str = "SiLU"
    num_layer: int = 2
    max_period: float = 10000

    def __post_init__(self) -> None:
        if self.activation.lower() not in _ACTIVATIONS:
            raise ConfigError(f"step_encoder.activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")
        if self.dim_raw_embedding < 1 or self.dim_hidden_layer < 1 or self.num_layer < 1:
            raise ConfigError("step_encoder dims and num_layer must be >= 1")


@dataclass(frozen=True)
class BiDilConvConfig:
    """``model.diffusion.bidilconv``."""

    base_channel: int = 384
    n_res_block: int = 20
    conv_kernel_size: int = 3
    dilation_cycle_length: int = 4
    conditioner_size: int = 384

    def __post_init__(self) -> None:
        for name in ("base_channel", "n_res_block", "conv_kernel_size", "dilation_cycle_length", "conditioner_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"bidilconv.{name} must be >= 1, got {getattr(self, name)}")
        if self.conv_kernel_size % 2 == 0:
            # The reference pads dilation * (k - 1) // 2 each side: an even kernel would change the length.
            raise ConfigError(f"bidilconv.conv_kernel_size must be odd, got {self.conv_kernel_size}")


@dataclass(frozen=True)
class DenoiserConfig:
    """Everything :class:`DiffWaveNet` is built from."""

    n_mel: int = 100
    bidilconv: BiDilConvConfig = field(default_factory=BiDilConvConfig)
    step_encoder: StepEncoderConfig = field(default_factory=StepEncoderConfig)


@dataclass(frozen=True)
class PNDMSettings:
    """The keyword arguments the reference gives ``PNDMScheduler``: ``model.diffusion.scheduler_settings``
    overlaid with ``inference.diffusion.scheduler_settings`` (``num_inference_timesteps`` dropped, as
    the reference pops it); everything else at diffusers' defaults. Other settings (``skip_prk_steps``,
    ``timestep_spacing``, ...) would change the step grid and the call count, and no release sets
    them: the parser refuses them."""

    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "linear"

    def kwargs(self) -> dict[str, Any]:
        return asdict(self)


def _section(args: Mapping[str, Any], *path: str) -> dict:
    node: Any = args
    for i, key in enumerate(path):
        if not isinstance(node, Mapping) or key not in node:
            raise ConfigError(f"config has no {'.'.join(path[: i + 1])}")
        node = node[key]
    if not isinstance(node, Mapping):
        raise ConfigError(f"config {'.'.join(path)} must be an object")
    return dict(node)


def _pick(cls, values: Mapping[str, Any], where: str):
    """``cls(**values)`` over the dataclass's own fields; a missing field keeps its default. Integer
    fields accept integral floats (JSON may write 384.0) and refuse anything else by name."""
    fields = cls.__dataclass_fields__
    picked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            continue
        if fields[key].type in ("int", int):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
                raise ConfigError(f"{where}.{key}: expected an integer, got {value!r}")
            value = int(value)
        picked[key] = value
    try:
        return cls(**picked)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def parse_denoiser_config(args: Mapping[str, Any]) -> DenoiserConfig:
    """The denoiser of a merged Amphion args.json (``preprocess.n_mel``, ``model.diffusion``)."""
    diffusion = _section(args, "model", "diffusion")
    model_type = str(diffusion.get("model_type", "bidilconv")).lower()
    if model_type != "bidilconv":
        raise ConfigError(f"model.diffusion.model_type {model_type!r} is not supported (only bidilconv)")
    n_mel = _section(args, "preprocess").get("n_mel")
    if isinstance(n_mel, bool) or not isinstance(n_mel, int) or n_mel < 1:
        raise ConfigError(f"preprocess.n_mel must be a positive integer, got {n_mel!r}")
    return DenoiserConfig(
        n_mel=n_mel,
        bidilconv=_pick(BiDilConvConfig, _section(args, "model", "diffusion", "bidilconv"),
                        "model.diffusion.bidilconv"),
        step_encoder=_pick(StepEncoderConfig, _section(args, "model", "diffusion", "step_encoder"),
                           "model.diffusion.step_encoder"),
    )


def parse_pndm_settings(args: Mapping[str, Any]) -> PNDMSettings:
    """The scheduler of a merged MultipleContentsSVC args.json; ConfigError unless it asks for PNDM."""
    inference = args.get("inference", {}).get("diffusion", {}) if isinstance(args.get("inference"), Mapping) else {}
    scheduler = str(inference.get("scheduler", SUPPORTED_INFERENCE_SCHEDULER)).lower()
    if scheduler != SUPPORTED_INFERENCE_SCHEDULER:
        raise ConfigError(f"inference.diffusion.scheduler {scheduler!r} is not supported (only pndm)")
    settings = {**dict(args.get("model", {}).get("diffusion", {}).get("scheduler_settings", {}) or {}),
                **dict(inference.get("scheduler_settings", {}) or {})}
    settings.pop("num_inference_timesteps", None)
    supported = sorted(PNDMSettings.__dataclass_fields__)
    unknown = sorted(set(settings) - set(supported))
    if unknown:
        raise ConfigError(f"scheduler_settings {unknown} are not supported (only {supported})")
    return _pick(PNDMSettings, settings, "scheduler_settings")


# ---------------------------------------------------------------------------------------------
# The denoiser
# ---------------------------------------------------------------------------------------------


_ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU}


class StepEncoder(nn.Module):
    """Diffusion step -> FiLM vector ``[B, out_dim]``: a sinusoidal embedding (cos half first, then sin;
    frequencies ``max_period^(-k/half)``, k = 0..half-1) fed through ``out`` = Linear-act-...-Linear."""

    def __init__(self, cfg: StepEncoderConfig, out_dim: int) -> None:
        super().__init__()
        self.raw_dim = cfg.dim_raw_embedding
        self.max_period = cfg.max_period
        act = _ACTIVATIONS[cfg.activation.lower()]
        layers: list[nn.Module] = [nn.Linear(cfg.dim_raw_embedding, cfg.dim_hidden_layer), act()]
        for _ in range(cfg.num_layer - 1):
            layers += [nn.Linear(cfg.dim_hidden_layer, cfg.dim_hidden_layer), act()]
        layers.append(nn.Linear(cfg.dim_hidden_layer, out_dim))
        self.out = nn.Sequential(*layers)

    def sinusoid(self, steps: torch.Tensor) -> torch.Tensor:
        """``[B]`` integer or fractional steps -> ``[B, raw_dim]``, always float32 (as the reference,
        which casts the steps with ``.float()`` whatever the model's dtype)."""
        half = self.raw_dim // 2
        scale = -math.log(self.max_period) / half
        freqs = torch.exp(scale * torch.arange(half, dtype=torch.float32, device=steps.device))
        angles = steps.reshape(-1, 1).float() * freqs.unsqueeze(0)
        emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
        if self.raw_dim % 2:
            emb = nn.functional.pad(emb, (0, 1))
        return emb

    def forward(self, steps: torch.Tensor) -> torch.Tensor:
        emb = self.sinusoid(steps)
        return self.out(emb.to(self.out[0].weight.dtype))


class GatedDilatedConv(nn.Module):
    """WaveNet's gated activation: ``tanh(a) * sigmoid(b)`` with ``[a; b]`` = a dilated conv of the
    input plus a 1x1 projection of the conditioner (the reference's ``GaU``)."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, context_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, 2 * channels, kernel_size, dilation=dilation,
                              padding=dilation * (kernel_size - 1) // 2)
        self.context_proj = nn.Conv1d(context_dim, 2 * channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        filt, gate = (self.conv(x) + self.context_proj(context)).chunk(2, dim=1)
        return torch.tanh(filt) * torch.sigmoid(gate)


class ResidualBlock(nn.Module):
    """One BiDilConv layer: FiLM-add the step vector, gated dilated conv, 1x1 to ``[residual; skip]``;
    the residual path is scaled by 1/sqrt(2) to keep the variance."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, context_dim: int) -> None:
        super().__init__()
        self.gau = GatedDilatedConv(channels, kernel_size, dilation, context_dim)
        self.out_proj = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x: torch.Tensor, step: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.out_proj(self.gau(x + step.unsqueeze(-1), context))
        residual, skip = h.chunk(2, dim=1)
        return (residual + x) / math.sqrt(2.0), skip


class BiDilConv(nn.Module):
    """Non-causal dilated conv stack (dilation ``2^(i mod cycle)``) over ``[B, n_mel, T]``; the skips are
    summed, scaled by 1/sqrt(n_blocks) and projected back to ``n_mel`` (1x1, ReLU, 1x1)."""

    def __init__(self, n_mel: int, cfg: BiDilConvConfig) -> None:
        super().__init__()
        c = cfg.base_channel
        self.input = nn.Sequential(nn.Conv1d(n_mel, c, 1), nn.ReLU())
        self.residual_blocks = nn.ModuleList(
            ResidualBlock(c, cfg.conv_kernel_size, 2 ** (i % cfg.dilation_cycle_length), cfg.conditioner_size)
            for i in range(cfg.n_res_block)
        )
        self.out_proj = nn.Sequential(nn.Conv1d(c, c, 1), nn.ReLU(), nn.Conv1d(c, n_mel, 1))

    def forward(self, x: torch.Tensor, step: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        h = self.input(x)
        skips = None
        for block in self.residual_blocks:
            h, skip = block(h, step, context)
            skips = skip if skips is None else skips + skip
        return self.out_proj(skips / math.sqrt(len(self.residual_blocks)))


class DiffWaveNet(nn.Module):
    """The reference's ``DiffusionWrapper``: ``forward(x [B, T, n_mel], steps [B], cond [B, T, C])``
    -> ``[B, T, n_mel]``. ``steps`` may be integers (DDPM/PNDM timesteps) or floats (EDM's c_noise)."""

    def __init__(self, cfg: DenoiserConfig) -> None:
        super().__init__()
        self.config = cfg
        self.diff_encoder = StepEncoder(cfg.step_encoder, cfg.bidilconv.base_channel)
        self.neural_network = BiDilConv(cfg.n_mel, cfg.bidilconv)

    def forward(self, x: torch.Tensor, steps: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.config.n_mel:
            raise ValueError(f"x must be [B, T, {self.config.n_mel}], got {tuple(x.shape)}")
        if cond.shape[:-1] != x.shape[:-1] or cond.shape[-1] != self.config.bidilconv.conditioner_size:
            raise ValueError(f"cond must be [B, T, {self.config.bidilconv.conditioner_size}] like x "
                             f"{tuple(x.shape)}, got {tuple(cond.shape)}")
        if steps.dim() != 1 or steps.shape[0] != x.shape[0]:
            raise ValueError(f"steps must be [B={x.shape[0]}], got {tuple(steps.shape)}")
        step = self.diff_encoder(steps)
        out = self.neural_network(x.transpose(1, 2), step, cond.transpose(1, 2))
        return out.transpose(1, 2)


# ---------------------------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------------------------


def initial_noise(shape: tuple[int, ...], like: torch.Tensor, noise: torch.Tensor | None = None,
                  seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """The sampler's one Gaussian draw: ``noise`` as given (parity replay; its shape must be ``shape``),
    else drawn from ``generator`` or a generator seeded with ``seed`` (on ``like``'s device, so the same
    seed on the same device gives the same draw), else from torch's global RNG."""
    shape = tuple(int(s) for s in shape)
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


# ---------------------------------------------------------------------------------------------
# PNDM
# ---------------------------------------------------------------------------------------------


def check_pndm_steps(n_steps: Any, settings: PNDMSettings = PNDMSettings()) -> int:
    """``n_steps`` as an int in ``MIN_PNDM_STEPS .. num_train_timesteps``, else :class:`DiffusionStepsError`
    (beyond ``num_train_timesteps`` the step ratio is 0 and every timestep would be 0)."""
    return checks.integer(n_steps, "diffusion_steps", DiffusionStepsError, MIN_PNDM_STEPS,
                          int(settings.num_train_timesteps))


def pndm_calls(n_steps: int, settings: PNDMSettings = PNDMSettings()) -> int:
    """Denoiser calls (= ``on_step`` reports) of an ``n_steps`` run: ``n_steps + 9``."""
    return check_pndm_steps(n_steps, settings) + PNDM_EXTRA_CALLS


def make_pndm_scheduler(settings: PNDMSettings, n_steps: int):
    """A fresh diffusers PNDMScheduler with its timesteps set (the scheduler keeps per-run state, so
    every run gets its own)."""
    from diffusers import PNDMScheduler  # imported here: only the workers that sample need diffusers

    n = check_pndm_steps(n_steps, settings)
    scheduler = PNDMScheduler(**settings.kwargs())
    scheduler.set_timesteps(n)
    return scheduler


def pndm_timesteps(n_steps: int, settings: PNDMSettings = PNDMSettings()) -> torch.Tensor:
    """The int64 timesteps an ``n_steps`` run calls the denoiser at, in order."""
    return make_pndm_scheduler(settings, n_steps).timesteps.clone()


@torch.no_grad()
def pndm_sample(denoiser: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                conditioner: torch.Tensor, n_mel: int, *, n_steps: int = DEFAULT_PNDM_STEPS,
                settings: PNDMSettings = PNDMSettings(), noise: torch.Tensor | None = None,
                seed: int | None = None, generator: torch.Generator | None = None,
                on_step: ProgressCallback | None = None) -> torch.Tensor:
    """Normalised mel ``[B, T, n_mel]`` in ``[-1, 1]`` for ``conditioner`` ``[B, T, C]``.

    Starts from ``x_T ~ N(0, I)`` ``[B, T, n_mel]`` (``noise`` / ``seed`` / ``generator``, see
    :func:`initial_noise`), then for each scheduler timestep ``t``: ``eps = denoiser(x, t, cond)``, ``x``
    = the PNDM update, clamped to ``[-1, 1]``. ``on_step(call, total)`` after each of the
    ``total = n_steps + 9`` calls. :class:`DiffusionStepsError` for ``n_steps`` out of range."""
    scheduler = make_pndm_scheduler(settings, n_steps)
    batch, frames = conditioner.shape[:2]
    mel = initial_noise((batch, frames, n_mel), conditioner, noise, seed, generator)
    timesteps = scheduler.timesteps
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        steps = torch.full((batch,), int(t), dtype=torch.long, device=mel.device)
        eps = denoiser(mel, steps, conditioner)
        mel = scheduler.step(eps, t, mel).prev_sample.clamp(-1.0, 1.0)
        if on_step is not None:
            on_step(i + 1, total)
    return mel

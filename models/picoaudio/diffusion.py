"""PicoAudio's latent diffusion: the UNet (diffusers ``UNet2DConditionModel``), its checkpoint
layout, and the DDPM sampler with classifier-free guidance.

``ckpts/pico_model/diffusion.pt`` is the state dict of the reference's
``ClapText_Onset_2_Audio_Diffusion``: ``unet.*`` plus ``class_emb.weight`` ``[24, 1024]``, an
embedding its parent class creates and the CLAP variant never reads (checked for shape, dropped).

Sampling (the reference's ``inference``): the onset matrix becomes 2 extra input channels
(``[B, 32, 256] -> [B, 2, 256, 16]``: rows 0-15 and 16-31, each row a frequency column); the CLAP
embedding ``[B, E]`` becomes one cross-attention token ``[B, 1, 2E]`` (each value repeated twice);
with guidance > 1 the unconditional token is zeros. Noise: one draw of the initial latents, then
one per step (also at the last, t = 1): the order the reference's DDPMScheduler draws in.

A batch may mix guidance scales: only the items guided (scale > 1) get an unconditional row, and
every per-item operation (guidance mix, DDPM step) is elementwise, so an item's latents depend on
the rest of the batch only through the UNet's batched kernels (float rounding).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn

from models.core.checkpoints import CheckpointError, load_exact
from models.core.random_init import conv2d_and_groupnorm, init_random_weights
from models.picoaudio.configs import LATENT_CHANNELS, ONSET_CHANNELS, SCHEDULER_CONFIG, parse_unet_config

__all__ = [
    "LATENT_FRAMES",
    "LATENT_BINS",
    "Draw",
    "build_unet",
    "ddpm_step",
    "encode_onsets",
    "make_scheduler",
    "sample_latents",
    "text_condition",
    "unet_state_dict",
]

#: Latent size the model generates: 256 frames (10.24 s) x 16 bins (64 mels / 4).
LATENT_FRAMES = 256
LATENT_BINS = 16
UNUSED_CLASS_EMBEDDING = "class_emb.weight"
#: Its shape: ``nn.Embedding(24, 1024)`` is hard-coded in the reference, whatever the UNet's size.
UNUSED_CLASS_EMBEDDING_SHAPE = (24, 1024)

#: ``draw(shape) -> float32 tensor``: where the sampler's Gaussian noise comes from.
Draw = Callable[[tuple[int, ...]], torch.Tensor]


def build_unet(config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor] | None = None, *,
               seed: int = 0, source: str = "diffusion checkpoint") -> nn.Module:
    """The UNet of ``config`` (diffusers format, see :func:`~models.picoaudio.configs.parse_unet_config`)
    with ``state_dict`` (the ``diffusion.pt`` layout, loaded strictly) or seeded random weights."""
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_config(parse_unet_config(dict(config)))
    if state_dict is None:
        init_random_weights(unet, seed, rules=(conv2d_and_groupnorm,))
    else:
        load_exact(unet, unet_state_dict(state_dict, source), source)
    return unet.eval().requires_grad_(False)


def unet_state_dict(state_dict: Mapping[str, torch.Tensor], source: str = "diffusion checkpoint"
                    ) -> dict[str, torch.Tensor]:
    """``diffusion.pt`` -> the UNet's own keys: ``unet.`` removed, the unused ``class_emb.weight``
    (``[24, 1024]``) dropped; any other key outside ``unet.`` is an error."""
    out, other = {}, []
    for key, value in state_dict.items():
        if key.startswith("unet."):
            out[key[len("unet."):]] = value
        elif key == UNUSED_CLASS_EMBEDDING:
            if tuple(value.shape) != UNUSED_CLASS_EMBEDDING_SHAPE:
                raise CheckpointError(f"{source}: {key} has shape {tuple(value.shape)}, expected "
                                      f"{list(UNUSED_CLASS_EMBEDDING_SHAPE)}")
        else:
            other.append(key)
    if other:
        raise CheckpointError(f"{source}: keys outside the PicoAudio diffusion layout: {sorted(other)[:20]}")
    return out


def make_scheduler(config: Mapping[str, Any] | None = None):
    """A fresh diffusers ``DDPMScheduler`` (the SD-2.1 configuration by default). One per call: it
    keeps the timesteps of the last ``set_timesteps``."""
    from diffusers import DDPMScheduler

    raw = dict(SCHEDULER_CONFIG if config is None else config)
    raw = {k: v for k, v in raw.items() if not k.startswith("_") and k not in ("set_alpha_to_one", "skip_prk_steps")}
    scheduler = DDPMScheduler.from_config(raw)
    if scheduler.config.variance_type != "fixed_small" or scheduler.config.prediction_type not in ("v_prediction",
                                                                                                   "epsilon"):
        raise ValueError("PicoAudio's sampler supports variance fixed_small with v_prediction or epsilon")
    return scheduler


def ddpm_step(scheduler, model_output: torch.Tensor, t: int | torch.Tensor, sample: torch.Tensor,
              noise: torch.Tensor | None) -> torch.Tensor:
    """``DDPMScheduler.step`` (fixed_small variance, no clipping) with the noise handed in instead
    of drawn inside, so that the sampler owns every draw; the arithmetic follows diffusers' order
    (tests compare the two). ``noise`` is used when ``t > 0``, as diffusers adds it."""
    t = int(t)
    prev_t = int(scheduler.previous_timestep(t))
    alpha_prod_t = scheduler.alphas_cumprod[t]
    alpha_prod_t_prev = scheduler.alphas_cumprod[prev_t] if prev_t >= 0 else scheduler.one
    beta_prod_t = 1 - alpha_prod_t
    beta_prod_t_prev = 1 - alpha_prod_t_prev
    current_alpha_t = alpha_prod_t / alpha_prod_t_prev
    current_beta_t = 1 - current_alpha_t
    if scheduler.config.prediction_type == "v_prediction":
        x0 = (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
    else:
        x0 = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
    x0_coeff = (alpha_prod_t_prev ** (0.5) * current_beta_t) / beta_prod_t
    sample_coeff = current_alpha_t ** (0.5) * beta_prod_t_prev / beta_prod_t
    prev = x0_coeff * x0 + sample_coeff * sample
    if t > 0:
        if noise is None:
            raise ValueError(f"step at t={t} needs noise")
        variance = torch.clamp((1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * current_beta_t, min=1e-20)
        prev = prev + (variance**0.5) * noise.to(prev.dtype)
    return prev


def encode_onsets(onsets: torch.Tensor) -> torch.Tensor:
    """Onset matrices ``[B, 32, 256]`` -> UNet channels ``[B, 2, 256, 16]`` (the reference's
    ``encode_channel``)."""
    b = onsets.shape[0]
    return onsets.reshape(b, ONSET_CHANNELS, -1, LATENT_FRAMES).transpose(2, 3)


def text_condition(text_embeddings: torch.Tensor) -> torch.Tensor:
    """CLAP embeddings ``[B, E]`` -> one cross-attention token ``[B, 1, 2E]`` (each value twice)."""
    return text_embeddings.repeat_interleave(2, -1).unsqueeze(1)


@torch.inference_mode()
def sample_latents(
    unet: nn.Module,
    scheduler,
    onsets: torch.Tensor,
    text_embeddings: torch.Tensor,
    *,
    num_steps: int,
    guidance_scale: float | Sequence[float],
    draw: Draw,
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Denoise from noise to latents ``[B, 8, 256, 16]`` (float32) for onsets ``[B, 32, 256]`` and
    CLAP embeddings ``[B, E]``. Classifier-free guidance for the items whose ``guidance_scale`` (one
    for all, or one per item) is above 1 (unconditional token: zeros); the UNet runs once per step on
    ``[unconditional rows of the guided items; every item's conditional row]``. ``draw(shape)`` gives
    the noise of the whole batch. ``on_step(step, total)`` after every denoising step."""
    device = onsets.device
    dtype = next(unet.parameters()).dtype
    batch = onsets.shape[0]
    if isinstance(guidance_scale, numbers.Real):
        scales = [float(guidance_scale)] * batch
    else:
        scales = [float(g) for g in guidance_scale]
        if len(scales) != batch:
            raise ValueError(f"{len(scales)} guidance scales for a batch of {batch}")
    guided = [i for i, g in enumerate(scales) if g > 1.0]
    onset_channels = encode_onsets(onsets.float())
    states = text_condition(text_embeddings.float())
    if guided:
        states = torch.cat([torch.zeros_like(states[guided]), states])
    mask = torch.ones(states.shape[0], 1, dtype=torch.bool, device=device)
    states = states.to(dtype)

    scheduler.set_timesteps(num_steps, device=device)
    timesteps = scheduler.timesteps
    shape = (batch, LATENT_CHANNELS, LATENT_FRAMES, LATENT_BINS)
    latents = draw(shape).to(device=device, dtype=torch.float32) * scheduler.init_noise_sigma
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        model_in = torch.cat([onset_channels, latents], dim=1)
        if guided:
            model_in = torch.cat([model_in[guided], model_in])
        model_in = scheduler.scale_model_input(model_in, t)
        out = unet(model_in.to(dtype), t, encoder_hidden_states=states, encoder_attention_mask=mask).sample.float()
        if guided:
            uncond, out = out[:len(guided)], out[len(guided):].clone()
            for row, item in enumerate(guided):
                out[item] = uncond[row] + scales[item] * (out[item] - uncond[row])
        noise = draw(shape).to(device=device, dtype=torch.float32) if int(t) > 0 else None
        latents = ddpm_step(scheduler, out, t, latents, noise)
        if on_step is not None:
            on_step(i + 1, total)
    return latents

"""The sampling loop of ``AudioLDMInference.inference``: diffusers' ``PNDMScheduler`` with the
settings the reference hard-codes, classifier-free guidance on every step.

With ``skip_prk_steps`` the scheduler's timesteps are ``num_inference_steps + 1`` long (the second
one repeats: 901, 801, 801, 701, ... for 10 steps); each is one UNet call (the unconditional and
the conditional half in one batch) and one PLMS update. The scheduler keeps per-call state (its
step counter and past noise predictions), so every call makes its own.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from models.audioldm.configs import SchedulerConfig

__all__ = ["denoise", "make_scheduler", "reference_int16"]

StepCallback = Callable[[int, int], None]


def make_scheduler(cfg: SchedulerConfig, num_inference_steps: int):
    from diffusers import PNDMScheduler

    scheduler = PNDMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        beta_schedule=cfg.beta_schedule,
        skip_prk_steps=cfg.skip_prk_steps,
        set_alpha_to_one=cfg.set_alpha_to_one,
        steps_offset=cfg.steps_offset,
        prediction_type=cfg.prediction_type,
    )
    scheduler.set_timesteps(num_inference_steps)
    return scheduler


def _guided_eps(unet, latents: torch.Tensor, t: torch.Tensor, uncond: torch.Tensor, cond: torch.Tensor,
                guidance_scale: float) -> torch.Tensor:
    """``eps_u + g * (eps_c - eps_u)``; one batch [uncond; cond] when the two texts are equally long
    (always, unless a negative prompt is longer than the prompt: then two calls)."""
    if uncond.shape == cond.shape:
        eps = unet(torch.cat([latents] * 2), t.expand(2), torch.cat([uncond, cond]))
        eps_uncond, eps_cond = eps.chunk(2)
    else:
        eps_uncond = unet(latents, t.expand(1), uncond)
        eps_cond = unet(latents, t.expand(1), cond)
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


def denoise(unet, uncond: torch.Tensor, cond: torch.Tensor, noise: torch.Tensor, *, num_inference_steps: int,
            guidance_scale: float, scheduler_config: SchedulerConfig = SchedulerConfig(),
            on_step: StepCallback | None = None) -> torch.Tensor:
    """Latents after the last PNDM update, float32 ``[1, z, h, w]``, from the initial ``noise``.

    ``uncond`` / ``cond``: text embeddings ``[1, L', d]`` / ``[1, L, d]``. ``on_step(step, total)``
    after each UNet call, ``total = len(timesteps) = num_inference_steps + 1``."""
    scheduler = make_scheduler(scheduler_config, num_inference_steps)
    device = noise.device
    uncond, cond = uncond.to(device), cond.to(device)
    latents = noise.float()
    timesteps = scheduler.timesteps
    total = len(timesteps)
    with torch.inference_mode():
        for i, t in enumerate(timesteps):
            t = t.to(device)
            model_input = scheduler.scale_model_input(latents, t)  # identity for PNDM, kept for fidelity
            eps = _guided_eps(unet, model_input, t.reshape(1), uncond, cond, guidance_scale).float()
            latents = scheduler.step(eps, t, latents).prev_sample
            if on_step is not None:
                on_step(i + 1, total)
    return latents


def reference_int16(audio: torch.Tensor | np.ndarray) -> np.ndarray:
    """What the reference writes to its WAV: ``(audio * 32768).astype(int16)`` (truncation toward
    zero; values at or beyond +-1 wrap as numpy's cast does). For parity checks only: the service
    converts float audio to PCM itself."""
    arr = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    return (arr.reshape(-1).astype(np.float32) * np.float32(32768.0)).astype(np.int16)

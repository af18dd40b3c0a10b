"""Noro's reverse diffusion: the VP-SDE probability-flow ODE integrated with Euler steps.

With ``s = cfg.sigma`` (the SDE's, 1.0 officially), ``h = 1 / steps`` and step ``i`` at the
midpoint time ``t = 1 - (i + 0.5) h``::

    cum(t)  = beta_min t + (beta_max - beta_min) t^2 / 2        (integrated noise rate)
    beta(t) = beta_min + (beta_max - beta_min) t
    x0      = estimator(x, condition, speaker, t)
    score   = -(x - x0 exp(-cum / (2 s^2))) / (s^2 (1 - exp(-cum / s^2)) + 1e-8)
    x      <- x + 0.5 h beta(t) (score + x / s^2)

The loop starts from ``noise / temperature``: the request's ``sigma`` (1.2 by default) is only this
temperature of the starting noise, never the SDE's ``s``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["StepFn", "VPSchedule", "euler_sample"]

#: ``on_step(step, total)`` after every step (1-based).
StepFn = Callable[[int, int], None]
#: Added to the variance before dividing (the reference's constant).
VARIANCE_EPS = 1e-8


@dataclass(frozen=True)
class VPSchedule:
    beta_min: float
    beta_max: float
    sigma: float

    def cumulative(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * (t**2)

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + (self.beta_max - self.beta_min) * t


def euler_sample(estimate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], schedule: VPSchedule,
                 noise: torch.Tensor, *, steps: int, temperature: float, on_step: StepFn | None = None,
                 trace: list | None = None) -> torch.Tensor:
    """Integrate from ``noise / temperature`` (``[B, T, n_mel]``) to the clean mel in ``steps`` Euler steps.

    ``estimate(x, t)`` returns the predicted clean mel for ``x`` at times ``t`` ``[B]``. ``trace``, when
    given, receives ``(x, t)`` as they enter each estimator call (for debugging against the reference).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    s2 = schedule.sigma**2
    h = 1.0 / steps
    x = noise / temperature
    for i in range(steps):
        t = torch.full((x.shape[0],), 1.0 - (i + 0.5) * h, dtype=x.dtype, device=x.device)
        if trace is not None:
            trace.append((x, t))
        tt = t[:, None, None]
        cum = schedule.cumulative(tt)
        x0 = estimate(x, t)
        noise_part = x - x0 * torch.exp(-0.5 * cum / s2)
        variance = s2 * (1.0 - torch.exp(-cum / s2))
        score = -noise_part / (variance + VARIANCE_EPS)
        x = x - (-0.5 * h * schedule.rate(tt) * (score + x / s2))
        if on_step is not None:
            on_step(i + 1, steps)
    return x

"""Noro's diffusion estimator: a WaveNet that predicts the clean mel from a noisy one.

``x0 = estimator(x_t [B, T, n_mel], condition [B, T, H], speaker [B, Nq, H], t [B])``:

* the condition (content + pitch) is layer-normed (``cond_ln``); ``h = relu(in_proj(x_t))``;
* the step embedding is ``mlp(sinusoid(t))`` with ``t`` in (0, 1) used as is (no x1000 scaling);
* each residual layer ``i`` dilates by ``2 ** (i % dilation_cycle)``; every ``cross_attn_every``-th
  layer (0, k, 2k, ...) also attends from the noisy features to the speaker queries and modulates its
  gated activation with the result (FiLM);
* the skips are summed, scaled by ``1 / sqrt(layers)`` and projected to the mel.

It runs unmasked, as the reference's sampler calls it. Parameter names are the checkpoint's
(``diffusion.diff_estimator.layers.N.film.gain.weight``, ...).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.noro.configs import EstimatorConfig

__all__ = ["WaveNetEstimator", "step_embedding"]


def step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``[B]`` times -> ``[B, dim]``: ``cat(sin(t f), cos(t f))`` with ``f_k = 10000 ** (-k / (dim/2 - 1))``."""
    half = dim // 2
    rates = torch.exp(torch.arange(half, device=t.device) * -(math.log(10000) / (half - 1)))
    angles = t[:, None] * rates[None, :]
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class Mish(nn.Module):
    """``x * tanh(softplus(x))``, written out as the reference computes it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(F.softplus(x))


class FiLM(nn.Module):
    """``x * gain(c) + bias(c)`` (feature-wise affine modulation from the attention output)."""

    def __init__(self, dim: int, cond_dim: int) -> None:
        super().__init__()
        self.gain = nn.Linear(cond_dim, dim)
        self.bias = nn.Linear(cond_dim, dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return x * self.gain(cond) + self.bias(cond)


class ResidualLayer(nn.Module):
    """One gated WaveNet layer; returns ``((h + residual) / sqrt(2), skip)``."""

    def __init__(self, hidden: int, heads: int, dilation: int, cross_attention: bool) -> None:
        super().__init__()
        self.hidden = hidden
        self.dilated_conv = nn.Conv1d(hidden, 2 * hidden, 3, padding=dilation, dilation=dilation)
        self.diffusion_proj = nn.Linear(hidden, hidden)
        self.cond_proj = nn.Conv1d(hidden, 2 * hidden, 1)
        self.out_proj = nn.Conv1d(hidden, 2 * hidden, 1)
        self.cross_attention = cross_attention
        if cross_attention:
            # The reference's attention dropout (0.1) never acts at inference; 0 here.
            self.attn = nn.MultiheadAttention(hidden, heads, batch_first=True)
            self.film = FiLM(2 * hidden, hidden)
            self.ln = nn.LayerNorm(hidden)

    def forward(self, h: torch.Tensor, cond: torch.Tensor, step: torch.Tensor,
                speaker: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``h`` ``[B, H, T]``, ``cond`` ``[B, H, T]``, ``step`` ``[B, H]``, ``speaker`` ``[B, Nq, H]``."""
        y = h + self.diffusion_proj(step).unsqueeze(-1)
        if self.cross_attention:
            q = self.ln(y.transpose(1, 2))
            attended = self.attn(q, speaker, speaker)[0]  # [B, T, H]
        y = self.dilated_conv(y) + self.cond_proj(cond)
        if self.cross_attention:
            y = self.film(y.transpose(1, 2), attended).transpose(1, 2)
        gate, signal = torch.chunk(y, 2, dim=1)  # gate first, as the reference splits it
        y = self.out_proj(torch.sigmoid(gate) * torch.tanh(signal))
        residual, skip = torch.chunk(y, 2, dim=1)
        return (h + residual) / math.sqrt(2.0), skip


class WaveNetEstimator(nn.Module):
    def __init__(self, cfg: EstimatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.in_proj = nn.Conv1d(cfg.in_dim, cfg.hidden, 1)
        self.mlp = nn.Sequential(nn.Linear(cfg.hidden, 4 * cfg.hidden), Mish(), nn.Linear(4 * cfg.hidden, cfg.hidden))
        self.cond_ln = nn.LayerNorm(cfg.hidden)
        self.layers = nn.ModuleList(
            ResidualLayer(cfg.hidden, cfg.heads, 2 ** (i % cfg.dilation_cycle), i % cfg.cross_attn_every == 0)
            for i in range(cfg.layers)
        )
        self.skip_proj = nn.Conv1d(cfg.hidden, cfg.hidden, 1)
        self.out_proj = nn.Conv1d(cfg.hidden, cfg.out_dim, 1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor, speaker: torch.Tensor,
                t: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, T, n_mel]``, ``condition`` ``[B, T, H]``, ``speaker`` ``[B, Nq, H]``, ``t`` ``[B]``
        -> predicted clean mel ``[B, T, n_mel]``."""
        cond = self.cond_ln(condition).transpose(1, 2)
        h = F.relu(self.in_proj(x.transpose(1, 2)))
        step = self.mlp(step_embedding(t, self.cfg.hidden).to(x.dtype))
        skips = []
        for layer in self.layers:
            h, skip = layer(h, cond, step, speaker)
            skips.append(skip)
        total = torch.sum(torch.stack(skips), dim=0) / math.sqrt(len(self.layers))
        return self.out_proj(F.relu(self.skip_proj(total))).transpose(1, 2)

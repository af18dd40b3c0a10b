"""DAC-style convolutional blocks: Snake activation and weight-normed residual / strided convs, as in
Amphion's ``models/codec/amphion_codec/codec.py`` (after descript-audio-codec).

:class:`Snake1d`, :class:`ResidualUnit` ``(dim, dilation)`` and :class:`EncoderBlock` ``(dim, stride)``
keep the reference's keys; every conv is :class:`models.core.weight_norm.WNConv1d`.
:func:`snake1d_near_one` is the tiny builds' random-init rule for Snake1d alphas. Formulas and keys:
``models/blocks/README.md``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from models.core.compute import FusedKernel
from models.core.random_init import Draws
from models.core.weight_norm import WNConv1d

SNAKE_EPS = 1e-9


def _snake_formula(x: torch.Tensor, alpha: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    return x + inv * torch.sin(alpha * x).pow(2)


def _snake_in_place(x: torch.Tensor, alpha: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    # The formula's operations in its order, on one buffer: bit for bit the same result.
    y = alpha * x
    return y.sin_().pow_(2).mul_(inv).add_(x)


#: ``x + inv * sin(alpha * x)^2`` on ``[B, C, T]`` (alpha, inv ``[1, C, 1]``): Snake (inv = 1 / alpha)
#: and SnakeBeta (inv = 1 / beta); compiled into one pass where :mod:`models.core.compute` allows.
SNAKE_KERNEL = FusedKernel("snake", _snake_formula, _snake_in_place,
                           lambda: (torch.randn(1, 4, 1 << 15), torch.ones(1, 4, 1), torch.ones(1, 4, 1)))


def snake(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Snake activation on ``[B, C, T]`` with ``alpha`` broadcastable to it (``[1, C, 1]``)."""
    return SNAKE_KERNEL(x, alpha, (alpha + SNAKE_EPS).reciprocal())


class Snake1d(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return snake(x, self.alpha)

    def extra_repr(self) -> str:
        return str(self.alpha.shape[1])


def snake1d_near_one(module: nn.Module, draws: Draws) -> bool:
    """Tiny builds' Snake1d alphas: normal(1, 0.1) (a :data:`models.core.random_init.Rule`)."""
    if not isinstance(module, Snake1d):
        return False
    draws.normal_(module.alpha, 1.0, 0.1)
    return True


class ResidualUnit(nn.Module):
    def __init__(self, dim: int, dilation: int = 1, kernel_size: int = 7) -> None:
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(dim),
            WNConv1d(dim, dim, kernel_size, dilation=dilation, padding=(kernel_size - 1) * dilation // 2),
            Snake1d(dim),
            WNConv1d(dim, dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        crop = (x.shape[-1] - y.shape[-1]) // 2
        if crop > 0:
            x = x[..., crop : x.shape[-1] - crop]
        return x + y


class EncoderBlock(nn.Module):
    """``[B, dim // 2, L]`` -> ``[B, dim, ~L / stride]``."""

    def __init__(self, dim: int, stride: int, dilations: tuple[int, ...] = (1, 3, 9)) -> None:
        super().__init__()
        half = dim // 2
        self.stride = stride
        self.block = nn.Sequential(
            *(ResidualUnit(half, dilation=d) for d in dilations),
            Snake1d(half),
            WNConv1d(half, dim, kernel_size=2 * stride, stride=stride, padding=math.ceil(stride / 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)

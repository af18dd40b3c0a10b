"""HiFi-GAN residual blocks (the "multi-receptive-field fusion" branches).

Module and attribute names (``convs1``/``convs2``, ``convs``) are the state-dict names of the
official checkpoints; do not rename them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.core.weight_norm import WNConv1d

# HiFi-GAN's leaky-ReLU slope inside the generator (the final activation uses 0.01, see hifigan.py).
LRELU_SLOPE = 0.1


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    """'Same' padding for an odd kernel with dilation (HiFi-GAN's ``get_padding``)."""
    return (kernel_size * dilation - dilation) // 2


def dilated_conv_pairs(channels: int, kernel_size: int, dilation: Sequence[int]) -> tuple[nn.ModuleList, nn.ModuleList]:
    """The two conv stacks of HiFi-GAN's ResBlock1 and BigVGAN's AMPBlock1: per dilation d, a
    dilated conv (`convs1`) followed by an undilated one (`convs2`), both length-preserving."""
    convs1 = nn.ModuleList(
        WNConv1d(channels, channels, kernel_size, dilation=d, padding=get_padding(kernel_size, d)) for d in dilation
    )
    convs2 = nn.ModuleList(
        WNConv1d(channels, channels, kernel_size, dilation=1, padding=get_padding(kernel_size, 1)) for _ in dilation
    )
    return convs1, convs2


class ResBlock1(nn.Module):
    """For each dilation d: ``x += conv2(lrelu(conv1_d(lrelu(x))))`` (resblock "1")."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3, 5)) -> None:
        super().__init__()
        self.convs1, self.convs2 = dilated_conv_pairs(channels, kernel_size, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c1(F.leaky_relu(x, LRELU_SLOPE))
            xt = c2(F.leaky_relu(xt, LRELU_SLOPE))
            x = xt + x
        return x


class ResBlock2(nn.Module):
    """For each dilation d: ``x += conv_d(lrelu(x))`` (resblock "2", the older ``egs/vocoder/gan/hifigan`` recipe)."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3)) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, dilation=d, padding=get_padding(kernel_size, d))
            for d in dilation
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = c(F.leaky_relu(x, LRELU_SLOPE)) + x
        return x


def make_resblock(kind: str, channels: int, kernel_size: int, dilation: Sequence[int]) -> nn.Module:
    if kind == "1":
        return ResBlock1(channels, kernel_size, dilation)
    if kind == "2":
        return ResBlock2(channels, kernel_size, dilation)
    raise ValueError(f'unknown HiFi-GAN resblock type {kind!r} (expected "1" or "2")')


def mrf_average(blocks: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Multi-receptive-field fusion: every block of a stage sees the same input; outputs are averaged.

    The generators keep all resblocks in one flat ``resblocks`` ModuleList (index = stage *
    num_kernels + kernel) because that is the checkpoint layout; they pass one stage's slice here.
    Summation order matches the reference ((b0 + b1) + b2) / n, so float32 results agree bit for bit.
    """
    total = blocks[0](x)
    for block in blocks[1:]:
        total = total + block(x)
    return total / len(blocks)

"""Building blocks of FACodec's convolutional encoder and decoder.

Every activation is BigVGAN's anti-aliased SnakeBeta with log-scale parameters
(:class:`models.blocks.alias_free.Activation1d` around ``SnakeBeta(alpha_logscale=True)``: keys
``act.alpha`` / ``act.beta`` and the two 12-tap filter buffers), every conv is weight-normed with the
old ``weight_g`` / ``weight_v`` keys. Two weight-normed layers the shared vocoder layers lack are
defined here on the same base class (so folding and plain-``weight`` conversion apply to them too):

* :class:`WNLinear`: the factorised quantisers' ``in_proj`` / ``out_proj`` are weight-normed
  ``nn.Linear`` layers (``weight_g`` ``[out, 1]``);
* :class:`WNConvTranspose1dOutPad`: the decoder's upsampling convs use ``output_padding = stride % 2``
  so that odd strides give exactly ``stride * n`` samples.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.blocks.alias_free import Activation1d, SnakeBeta
from models.core.weight_norm import WeightNormConv, WNConv1d, WNConvTranspose1d


def snake_beta(channels: int) -> Activation1d:
    """FACodec's only activation: alias-free SnakeBeta, ``x + sin^2(e^a x) / (e^b + 1e-9)`` per channel."""
    return Activation1d(SnakeBeta(channels, alpha_logscale=True))


def stride_padding(stride: int) -> int:
    """``ceil(stride / 2)``: the padding of the strided (transposed) convs."""
    return stride // 2 + stride % 2


class WNLinear(WeightNormConv):
    """``weight_norm(nn.Linear(in, out))``: ``weight_v`` ``[out, in]``, ``weight_g`` ``[out, 1]``."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__((out_features, in_features), out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        out_features, in_features = self.weight_v.shape
        return f"in_features={in_features}, out_features={out_features}"


class WNConvTranspose1dOutPad(WNConvTranspose1d):
    """Weight-normed transposed conv with ``output_padding`` (the shared one has none)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int, output_padding: int
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)
        self.output_padding = output_padding

    def _pack(self, weight: torch.Tensor) -> None:
        return None   # packed for no output padding; this one keeps its weight plain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, output_padding={self.output_padding}"


class ResidualUnit(nn.Module):
    """``x + conv1x1(act(conv7_dilated(act(x))))``; the dilated conv keeps the length (no cropping)."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            snake_beta(channels),
            WNConv1d(channels, channels, kernel_size=7, dilation=dilation, padding=3 * dilation),
            snake_beta(channels),
            WNConv1d(channels, channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def residual_stack(channels: int) -> list[nn.Module]:
    """The three residual units (dilations 1, 3, 9) of every encoder and decoder block."""
    return [ResidualUnit(channels, dilation) for dilation in (1, 3, 9)]


def downsampled_length(length: int, stride: int) -> int:
    """Output length of ``Conv1d(k=2s, stride=s, padding=ceil(s/2))`` on ``length`` samples:
    ``floor(n / s)`` for even ``s``, ``floor((n + 1) / s)`` for odd ``s`` (no input padding)."""
    return (length + 2 * stride_padding(stride) - 2 * stride) // stride + 1

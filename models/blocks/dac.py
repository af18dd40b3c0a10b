"""The convolutional encoder and decoder of descript-audio-codec (DAC), as DualCodec's ``dac_model.py``
builds them, inference only.

:class:`DacEncoder` ``(d_model, strides, d_latent)``: waveform ``[B, 1, L]`` -> latent ``[B, d_latent,
L / prod(strides)]``. :class:`DacDecoder` ``(input_channel, channels, rates)`` of
:class:`DacDecoderBlock` s: latent -> tanh waveform of :meth:`DacDecoder.output_length` samples (the
reference's transposed-conv length quirk included). Every conv is weight-normed; keys are the
reference's. Layer by layer: ``models/blocks/README.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from models.blocks.snake_conv import EncoderBlock, ResidualUnit, Snake1d
from models.core.weight_norm import WNConv1d, WNConvTranspose1d

RESIDUAL_DILATIONS = (1, 3, 9)


class DacEncoder(nn.Module):
    def __init__(self, d_model: int, strides: Sequence[int], d_latent: int) -> None:
        super().__init__()
        self.strides = tuple(int(s) for s in strides)
        self.hop_length = math.prod(self.strides)
        width = d_model
        layers: list[nn.Module] = [WNConv1d(1, width, kernel_size=7, padding=3)]
        for stride in self.strides:
            width *= 2
            layers.append(EncoderBlock(width, stride=stride, dilations=RESIDUAL_DILATIONS))
        layers += [Snake1d(width), WNConv1d(width, d_latent, kernel_size=3, padding=1)]
        self.block = nn.Sequential(*layers)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, 1, L]`` -> ``[B, d_latent, T]``; ``T = L / hop`` when ``L`` is a multiple of the hop."""
        return self.block(wav)


class DacDecoderBlock(nn.Module):
    def __init__(self, input_dim: int, output_dim: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.block = nn.Sequential(
            Snake1d(input_dim),
            WNConvTranspose1d(input_dim, output_dim, kernel_size=2 * stride, stride=stride,
                              padding=math.ceil(stride / 2)),
            *(ResidualUnit(output_dim, dilation=d) for d in RESIDUAL_DILATIONS),
        )

    def output_length(self, length: int) -> int:
        """Samples out for ``length`` in: ``(n - 1) * s - 2 * ceil(s / 2) + 2 * s``."""
        s = self.stride
        return (length - 1) * s - 2 * math.ceil(s / 2) + 2 * s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DacDecoder(nn.Module):
    def __init__(self, input_channel: int, channels: int, rates: Sequence[int], d_out: int = 1) -> None:
        super().__init__()
        self.rates = tuple(int(r) for r in rates)
        layers: list[nn.Module] = [WNConv1d(input_channel, channels, kernel_size=7, padding=3)]
        output_dim = channels
        for i, stride in enumerate(self.rates):
            output_dim = channels // 2 ** (i + 1)
            layers.append(DacDecoderBlock(channels // 2**i, output_dim, stride))
        layers += [Snake1d(output_dim), WNConv1d(output_dim, d_out, kernel_size=7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def output_length(self, frames: int) -> int:
        """Samples the decoder makes from ``frames`` latent frames."""
        length = frames
        for layer in self.model:
            if isinstance(layer, DacDecoderBlock):
                length = layer.output_length(length)
        return length

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, input_channel, T]`` -> waveform ``[B, d_out, output_length(T)]`` in ``(-1, 1)``."""
        return self.model(z)

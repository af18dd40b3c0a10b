"""FACodec's waveform encoder (Amphion ``FACodecEncoder``): 16 kHz audio -> latent frames.

``block`` = conv k7 (1 -> ngf), one :class:`EncoderBlock` per stride (width doubles each time),
alias-free SnakeBeta, conv k3 -> ``out_channels``. Keys are the official ``ns3_facodec_encoder.bin``
ones (``block.<i>...``).

Length: nothing pads the input. Each strided conv (kernel ``2s``, stride ``s``, padding
``ceil(s/2)``) gives ``floor(n/s)`` frames for even ``s`` and ``floor((n+1)/s)`` for odd ``s``
(:meth:`FACodecEncoder.num_frames`), so ``T = L / hop`` exactly when ``L`` is a multiple of the hop
(200 officially) and otherwise whatever that chain gives (e.g. 199 samples -> 1 frame, 150 -> 0).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.core.weight_norm import WNConv1d
from models.facodec.configs import FACodecEncoderConfig
from models.facodec.layers import downsampled_length, residual_stack, snake_beta, stride_padding


class EncoderBlock(nn.Module):
    """Residual units at half width, activation, strided conv doubling the width: ``[B, C/2, n] -> [B, C, ~n/s]``."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        half = channels // 2
        self.block = nn.Sequential(
            *residual_stack(half),
            snake_beta(half),
            WNConv1d(half, channels, kernel_size=2 * stride, stride=stride, padding=stride_padding(stride)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class FACodecEncoder(nn.Module):
    def __init__(self, config: FACodecEncoderConfig) -> None:
        super().__init__()
        self.config = config
        width = config.ngf
        layers: list[nn.Module] = [WNConv1d(1, width, kernel_size=7, padding=3)]
        for stride in config.up_ratios:
            width *= 2
            layers.append(EncoderBlock(width, stride))
        layers += [snake_beta(width), WNConv1d(width, config.out_channels, kernel_size=3, padding=1)]
        self.block = nn.Sequential(*layers)

    def num_frames(self, num_samples: int) -> int:
        """Latent frames for ``num_samples`` input samples (see the module docstring)."""
        n = num_samples
        for stride in self.config.up_ratios:
            n = downsampled_length(n, stride)
            if n < 1:  # an empty stage: the next conv could not run
                return 0
        return n

    def min_samples(self) -> int:
        """The shortest input that gives at least one frame at every stage."""
        n = 1
        while self.num_frames(n) < 1:
            n += 1
        return n

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """``wav`` ``[B, 1, L]`` (16 kHz, unnormalised) -> ``enc_out`` ``[B, out_channels, T]``."""
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"FACodecEncoder expects a waveform [B, 1, L], got {tuple(wav.shape)}")
        if self.num_frames(wav.shape[-1]) < 1:
            raise ValueError(
                f"{wav.shape[-1]} samples are too short for FACodec: at least {self.min_samples()} are needed"
            )
        return self.block(wav)

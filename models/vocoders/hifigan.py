"""Amphion's HiFi-GAN generator (``models/vocoders/gan/generator/hifigan.py``), re-implemented.

mel ``[B, n_mels, T]`` -> audio ``[B, 1, T * prod(upsample_rates)]`` in (-1, 1).

``conv_pre`` (k7) -> per stage: leaky_relu(0.1), transposed conv (stride u, padding (k-u)//2), mean
of the stage's resblocks -> leaky_relu with torch's *default* slope 0.01 (not 0.1: the reference
calls ``F.leaky_relu(x)`` without a slope, and the checkpoints were trained that way) -> ``conv_post``
(k7, bias) -> tanh.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.core.weight_norm import WNConv1d, WNConvTranspose1d
from models.vocoders.configs import HiFiGANConfig
from models.vocoders.resblocks import LRELU_SLOPE, make_resblock, mrf_average

FINAL_LRELU_SLOPE = 0.01  # torch's default negative_slope, which the reference relies on


def build_upsamplers(cfg: HiFiGANConfig) -> nn.ModuleList:
    """The stage upsamplers; stage i maps C/2^i -> C/2^(i+1) channels and T -> u_i * T samples."""
    c0 = cfg.upsample_initial_channel
    return nn.ModuleList(
        WNConvTranspose1d(c0 // 2**i, c0 // 2 ** (i + 1), k, stride=u, padding=(k - u) // 2)
        for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))
    )


def build_resblocks(cfg: HiFiGANConfig) -> nn.ModuleList:
    """All stages' resblocks in one flat list (index = stage * num_kernels + kernel), as checkpointed."""
    blocks = nn.ModuleList()
    for i in range(len(cfg.upsample_rates)):
        ch = cfg.upsample_initial_channel // 2 ** (i + 1)
        for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
            blocks.append(make_resblock(cfg.resblock, ch, k, d))
    return blocks


class HiFiGANGenerator(nn.Module):
    def __init__(self, cfg: HiFiGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.num_upsamples = len(cfg.upsample_rates)
        self.upsample_factor = cfg.upsample_factor
        self.conv_pre = WNConv1d(cfg.n_mels, cfg.upsample_initial_channel, 7, padding=3)
        self.ups = build_upsamplers(cfg)
        self.resblocks = build_resblocks(cfg)
        last_channels = cfg.upsample_initial_channel // 2**self.num_upsamples
        self.conv_post = WNConv1d(last_channels, 1, 7, padding=3)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            x = mrf_average(self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels], x)
        x = self.conv_post(F.leaky_relu(x, FINAL_LRELU_SLOPE))
        return torch.tanh(x)

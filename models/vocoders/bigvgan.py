"""BigVGAN generator: NVIDIA's v2 checkpoints and Amphion's BigVGAN with one class.

mel ``[B, n_mels, T]`` -> audio ``[B, 1, T * prod(upsample_rates)]``.

Differences from HiFi-GAN: no activation before the stage upsamplers; the residual blocks (AMP
blocks) use anti-aliased Snake / SnakeBeta activations instead of leaky ReLU; after the last stage
comes another anti-aliased activation (``activation_post``). The ending depends on the checkpoint
family, hence two config flags:

* NVIDIA v2 (``use_tanh_at_final`` false, ``use_bias_at_final`` false): ``conv_post`` has no bias and
  the output is clamped to [-1, 1]. A tanh here would visibly soften loud passages.
* NVIDIA v1 and Amphion's class: ``conv_post`` with bias, then tanh.

The layout is otherwise identical (``ups.N.0``: every upsampler sits in a one-element ModuleList).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from models.blocks.alias_free import Activation1d, make_snake
from models.core.weight_norm import WNConv1d, WNConvTranspose1d
from models.vocoders.configs import BigVGANConfig
from models.vocoders.resblocks import dilated_conv_pairs, get_padding, mrf_average


class AMPBlock1(nn.Module):
    """For each dilation d: ``x += convs2_n(act_{2n+1}(convs1_n(act_{2n}(x))))``."""

    def __init__(self, channels: int, kernel_size: int, dilation: Sequence[int], activation: str, logscale: bool):
        super().__init__()
        self.convs1, self.convs2 = dilated_conv_pairs(channels, kernel_size, dilation)
        self.activations = nn.ModuleList(
            Activation1d(make_snake(activation, channels, logscale)) for _ in range(2 * len(dilation))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acts_in, acts_mid = self.activations[::2], self.activations[1::2]
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, acts_in, acts_mid):
            x = c2(a2(c1(a1(x)))) + x
        return x


class AMPBlock2(nn.Module):
    """For each dilation d: ``x += convs_n(act_n(x))`` (resblock "2")."""

    def __init__(self, channels: int, kernel_size: int, dilation: Sequence[int], activation: str, logscale: bool):
        super().__init__()
        self.convs = nn.ModuleList(
            WNConv1d(channels, channels, kernel_size, dilation=d, padding=get_padding(kernel_size, d))
            for d in dilation
        )
        self.activations = nn.ModuleList(
            Activation1d(make_snake(activation, channels, logscale)) for _ in range(len(dilation))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c, a in zip(self.convs, self.activations):
            x = c(a(x)) + x
        return x


class BigVGANGenerator(nn.Module):
    def __init__(self, cfg: BigVGANConfig) -> None:
        super().__init__()
        if cfg.resblock not in ("1", "2"):
            raise ValueError(f'unknown BigVGAN resblock type {cfg.resblock!r} (expected "1" or "2")')
        self.cfg = cfg
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.num_upsamples = len(cfg.upsample_rates)
        self.upsample_factor = cfg.upsample_factor
        c0 = cfg.upsample_initial_channel
        self.conv_pre = WNConv1d(cfg.n_mels, c0, 7, padding=3)
        self.ups = nn.ModuleList(
            nn.ModuleList([WNConvTranspose1d(c0 // 2**i, c0 // 2 ** (i + 1), k, stride=u, padding=(k - u) // 2)])
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))
        )
        block = AMPBlock1 if cfg.resblock == "1" else AMPBlock2
        self.resblocks = nn.ModuleList()
        for i in range(self.num_upsamples):
            ch = c0 // 2 ** (i + 1)
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
                self.resblocks.append(block(ch, k, d, cfg.activation, cfg.snake_logscale))
        last = c0 // 2**self.num_upsamples
        self.activation_post = Activation1d(make_snake(cfg.activation, last, cfg.snake_logscale))
        self.conv_post = WNConv1d(last, 1, 7, padding=3, bias=cfg.use_bias_at_final)
        self.use_tanh_at_final = cfg.use_tanh_at_final

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for i, stage in enumerate(self.ups):
            for up in stage:
                x = up(x)
            x = mrf_average(self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels], x)
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x) if self.use_tanh_at_final else torch.clamp(x, min=-1.0, max=1.0)

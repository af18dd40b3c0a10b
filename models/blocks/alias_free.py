"""BigVGAN's anti-aliased periodic activations.

A Snake-type activation creates harmonics above Nyquist; BigVGAN evaluates it at twice the sample
rate (upsample 2x with a windowed-sinc low-pass, activate, low-pass and downsample 2x) so that they
are filtered out instead of aliasing. Everything here is depthwise and cheap.

State-dict names follow the official checkpoints: ``<act>.act.alpha`` / ``.beta``,
``<act>.upsample.filter`` and ``<act>.downsample.lowpass.filter``; the two filters are persistent
buffers, so loading a checkpoint also loads the exact float32 filter taps it was trained with.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def kaiser_beta(attenuation_db: float) -> float:
    """Kaiser's empirical window shape parameter for a stop-band attenuation (dB)."""
    a = attenuation_db
    if a > 50.0:
        return 0.1102 * (a - 8.7)
    if a >= 21.0:
        return 0.5842 * (a - 21.0) ** 0.4 + 0.07886 * (a - 21.0)
    return 0.0


def kaiser_sinc_filter1d(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass ``[1, 1, kernel_size]`` normalised to unit DC gain.

    ``cutoff`` and ``half_width`` are in cycles per sample (0.5 = Nyquist). The attenuation follows
    from the transition width and the number of taps (Kaiser's design formula); an even kernel is
    centred between two taps.
    """
    half = kernel_size // 2
    transition = 4.0 * half_width
    attenuation = 2.285 * (half - 1) * math.pi * transition + 7.95
    window = torch.kaiser_window(kernel_size, periodic=False, beta=kaiser_beta(attenuation))
    if kernel_size % 2 == 0:
        t = torch.arange(-half, half) + 0.5
    else:
        t = torch.arange(kernel_size) - half
    if cutoff == 0:
        taps = torch.zeros_like(t)
    else:
        taps = 2 * cutoff * window * torch.sinc(2 * cutoff * t)
        taps = taps / taps.sum()
    return taps.view(1, 1, kernel_size)


class LowPassFilter1d(nn.Module):
    """Depthwise low-pass with replicate padding; with ``stride`` > 1 it also decimates."""

    def __init__(self, cutoff: float = 0.5, half_width: float = 0.6, stride: int = 1, kernel_size: int = 12):
        super().__init__()
        if cutoff < 0 or cutoff > 0.5:
            raise ValueError("cutoff must be within [0, 0.5]")
        even = kernel_size % 2 == 0
        self.pad_left = kernel_size // 2 - int(even)
        self.pad_right = kernel_size // 2
        self.stride = stride
        self.register_buffer("filter", kaiser_sinc_filter1d(cutoff, half_width, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(channels, -1, -1), stride=self.stride, groups=channels)


class UpSample1d(nn.Module):
    """Zero-stuffing upsampler + windowed-sinc interpolation: ``[B, C, T] -> [B, C, ratio*T]``."""

    def __init__(self, ratio: int = 2, kernel_size: int | None = None) -> None:
        super().__init__()
        self.ratio = ratio
        self.kernel_size = int(6 * ratio // 2) * 2 if kernel_size is None else kernel_size
        self.stride = ratio
        # Replicate-pad the input, then crop the transposed-conv output so exactly ratio*T remain.
        self.pad = self.kernel_size // ratio - 1
        self.pad_left = self.pad * self.stride + (self.kernel_size - self.stride) // 2
        self.pad_right = self.pad * self.stride + (self.kernel_size - self.stride + 1) // 2
        self.register_buffer("filter", kaiser_sinc_filter1d(0.5 / ratio, 0.6 / ratio, self.kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        # Zero stuffing divides the energy by ``ratio``; the gain restores it.
        x = self.ratio * F.conv_transpose1d(
            x, self.filter.expand(channels, -1, -1), stride=self.stride, groups=channels
        )
        return x[..., self.pad_left : -self.pad_right]


class DownSample1d(nn.Module):
    """Low-pass at the new Nyquist, keep every ``ratio``-th sample: ``[B, C, T] -> [B, C, T/ratio]``."""

    def __init__(self, ratio: int = 2, kernel_size: int | None = None) -> None:
        super().__init__()
        kernel_size = int(6 * ratio // 2) * 2 if kernel_size is None else kernel_size
        self.lowpass = LowPassFilter1d(0.5 / ratio, 0.6 / ratio, stride=ratio, kernel_size=kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class Snake(nn.Module):
    """``x + 1/alpha * sin^2(alpha x)``, one alpha per channel (stored as log(alpha) if logscale)."""

    def __init__(self, channels: int, alpha_logscale: bool = False) -> None:
        super().__init__()
        self.alpha_logscale = alpha_logscale
        init = torch.zeros(channels) if alpha_logscale else torch.ones(channels)
        self.alpha = nn.Parameter(init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.view(1, -1, 1)
        if self.alpha_logscale:
            alpha = torch.exp(alpha)
        return x + (1.0 / (alpha + 1e-9)) * torch.sin(x * alpha).pow(2)


class SnakeBeta(nn.Module):
    """``x + 1/beta * sin^2(alpha x)``: separate frequency (alpha) and magnitude (beta) per channel."""

    def __init__(self, channels: int, alpha_logscale: bool = False) -> None:
        super().__init__()
        self.alpha_logscale = alpha_logscale
        init = torch.zeros(channels) if alpha_logscale else torch.ones(channels)
        self.alpha = nn.Parameter(init.clone())
        self.beta = nn.Parameter(init.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.view(1, -1, 1)
        beta = self.beta.view(1, -1, 1)
        if self.alpha_logscale:
            alpha = torch.exp(alpha)
            beta = torch.exp(beta)
        return x + (1.0 / (beta + 1e-9)) * torch.sin(x * alpha).pow(2)


class Activation1d(nn.Module):
    """Anti-aliased activation: upsample 2x, ``act``, downsample 2x."""

    def __init__(
        self,
        activation: nn.Module,
        up_ratio: int = 2,
        down_ratio: int = 2,
        up_kernel_size: int = 12,
        down_kernel_size: int = 12,
    ) -> None:
        super().__init__()
        self.act = activation
        self.upsample = UpSample1d(up_ratio, up_kernel_size)
        self.downsample = DownSample1d(down_ratio, down_kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


def make_snake(kind: str, channels: int, alpha_logscale: bool) -> nn.Module:
    if kind == "snake":
        return Snake(channels, alpha_logscale)
    if kind == "snakebeta":
        return SnakeBeta(channels, alpha_logscale)
    raise ValueError(f'unknown BigVGAN activation {kind!r} (expected "snake" or "snakebeta")')

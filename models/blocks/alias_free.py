"""BigVGAN's anti-aliased periodic activations.

A Snake-type activation creates harmonics above Nyquist; BigVGAN evaluates it at twice the sample
rate (upsample 2x with a windowed-sinc low-pass, activate, low-pass and downsample 2x) so that they
are filtered out instead of aliasing. Everything here is depthwise and cheap.

:meth:`Activation1d.forward` computes the reference's steps in fewer passes (the arithmetic is the
same up to float summation order): the zero-stuffing transposed convolution as one short
depthwise filter per output phase (polyphase: the stuffed zeros are never multiplied), the
phases written straight into one buffer that already holds the downsampler's replicate padding,
the activation over that buffer (one compiled pass, :mod:`models.core.compute`), and the
downsampling convolution without a padding copy.

State-dict names follow the official checkpoints: ``<act>.act.alpha`` / ``.beta``,
``<act>.upsample.filter`` and ``<act>.downsample.lowpass.filter``; the two filters are persistent
buffers, so loading a checkpoint also loads the exact float32 filter taps it was trained with.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.blocks.snake_conv import SNAKE_KERNEL
from models.core.compute import FusedKernel


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


def replicate_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """``F.pad(x, (left, right), mode="replicate")`` for ``[B, C, T]``, as one concatenation (the
    replicate-padding kernel is several times slower on CPU)."""
    parts = [x[..., :1].expand(*x.shape[:-1], left)] if left else []
    parts.append(x)
    if right:
        parts.append(x[..., -1:].expand(*x.shape[:-1], right))
    return torch.cat(parts, dim=-1) if len(parts) > 1 else x


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
        return self.filter_padded(replicate_pad(x, self.pad_left, self.pad_right))

    def filter_padded(self, x: torch.Tensor) -> torch.Tensor:
        """The filter on an input that already carries ``pad_left`` / ``pad_right`` replicated samples."""
        channels = x.shape[1]
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
        if self.polyphase_ok:
            return self.polyphase(x, 0, 0)
        channels = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        # Zero stuffing divides the energy by ``ratio``; the gain restores it.
        x = self.ratio * F.conv_transpose1d(
            x, self.filter.expand(channels, -1, -1), stride=self.stride, groups=channels
        )
        return x[..., self.pad_left : -self.pad_right]

    @property
    def polyphase_ok(self) -> bool:
        """Whether :meth:`polyphase` applies: whole taps per phase and a power-of-two ratio (its
        gain folds into the taps exactly)."""
        r, k = self.ratio, self.kernel_size
        return k % r == 0 and r & (r - 1) == 0 and self.stride == r

    def phase_filters(self) -> tuple[torch.Tensor, list[int]]:
        """The polyphase form: ``(weights [ratio, kernel_size / ratio], starts)``: output sample
        ``ratio*q + p`` is ``sum_j weights[p, j] * padded[q + starts[p] + j]`` (``padded``: the input
        with ``pad`` replicated samples each side); the gain is folded in (exactly: a power of two)."""
        r = self.ratio
        taps = self.kernel_size // r
        flipped = self.filter.view(-1).flip(0) * r
        # Phase p uses f[r*(taps-1-j) + n % r] (n = p + pad_left): every r-th of the flipped filter.
        firsts = [(r - 1) - (p + self.pad_left) % r for p in range(r)]
        starts = [(p + self.pad_left) // r - (taps - 1) for p in range(r)]
        return torch.stack([flipped[f::r][:taps] for f in firsts]), starts

    def polyphase(self, x: torch.Tensor, left: int, right: int) -> torch.Tensor:
        """:meth:`forward`'s ``[B, C, ratio*T]`` computed phase by phase (:meth:`phase_filters`),
        with ``left`` / ``right`` extra samples replicating its first / last value (the padding a
        following filter needs)."""
        weights, starts = self.phase_filters()
        return polyphase_upsample(x, weights, starts, self.pad, left, right)


def polyphase_upsample(x: torch.Tensor, weights: torch.Tensor, starts: list[int], pad: int, left: int,
                       right: int) -> torch.Tensor:
    """``[B, C, T]`` -> ``[B, C, left + r*T + right]`` (``r = len(weights)`` phases): all phases in one
    depthwise convolution with ``r`` outputs per channel, written interleaved into one buffer whose
    ``left`` / ``right`` edges replicate the first / last sample."""
    batch, channels, length = x.shape
    r, taps = weights.shape
    phases = F.conv1d(replicate_pad(x, pad, pad), weights.repeat(channels, 1).unsqueeze(1), groups=channels)
    phases = phases.view(batch, channels, r, -1)
    out = x.new_empty(batch, channels, left + r * length + right)
    body = out[..., left : left + r * length].view(batch, channels, length, r)
    for p in range(r):
        body[..., p] = phases[:, :, p, starts[p] : starts[p] + length]
    if left:
        out[..., :left] = body[..., 0, :1]
    if right:
        out[..., left + r * length :] = body[..., -1, r - 1 : r]
    return out


# BigVGAN's activation as one kernel: 2x up (12 taps), snake, 2x down (12 taps), replicate padding
# at both filters. Its layout constants are fixed (the only configuration the checkpoints use):
_UP_PAD, _UP_STARTS, _DOWN_LEFT, _DOWN_RIGHT, _DOWN_TAPS = 5, (2, 3), 5, 6, 12


def _edges(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    return torch.cat([x[..., :1].expand(*x.shape[:-1], left), x, x[..., -1:].expand(*x.shape[:-1], right)], dim=-1)


def _aa_snake_formula(x: torch.Tensor, w_up: torch.Tensor, alpha: torch.Tensor, inv: torch.Tensor,
                      w_down: torch.Tensor) -> torch.Tensor:
    # Shifted slices and sums only, so that inductor fuses the filters with the activation.
    length = x.shape[-1]
    xp = _edges(x, _UP_PAD, _UP_PAD)
    phases = [sum(w_up[p, j] * xp[..., s + j : s + j + length] for j in range(w_up.shape[1]))
              for p, s in enumerate(_UP_STARTS)]
    up = torch.stack(phases, dim=-1).flatten(-2)
    act = _edges(up + inv * torch.sin(alpha * up).pow(2), _DOWN_LEFT, _DOWN_RIGHT)
    return sum(w_down[k] * act[..., k : k + 2 * length - 1 : 2] for k in range(_DOWN_TAPS))


def _aa_snake_eager(x: torch.Tensor, w_up: torch.Tensor, alpha: torch.Tensor, inv: torch.Tensor,
                    w_down: torch.Tensor) -> torch.Tensor:
    up = polyphase_upsample(x, w_up, list(_UP_STARTS), _UP_PAD, _DOWN_LEFT, _DOWN_RIGHT)
    act = SNAKE_KERNEL(up, alpha, inv)
    channels = x.shape[1]
    return F.conv1d(act, w_down.view(1, 1, -1).expand(channels, -1, -1), stride=2, groups=channels)


AA_SNAKE_KERNEL = FusedKernel(
    "anti_aliased_snake", _aa_snake_formula, _aa_snake_eager,
    lambda: (torch.randn(1, 4, 1 << 14), torch.randn(2, 6), torch.ones(1, 4, 1), torch.ones(1, 4, 1),
             torch.randn(12)))


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
        return SNAKE_KERNEL(x, *self.kernel_args())

    def kernel_args(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha, 1 / alpha)`` as ``[1, C, 1]``: the snake kernel's parameters."""
        alpha = self.alpha.view(1, -1, 1)
        if self.alpha_logscale:
            alpha = torch.exp(alpha)
        return alpha, 1.0 / (alpha + 1e-9)


class SnakeBeta(nn.Module):
    """``x + 1/beta * sin^2(alpha x)``: separate frequency (alpha) and magnitude (beta) per channel."""

    def __init__(self, channels: int, alpha_logscale: bool = False) -> None:
        super().__init__()
        self.alpha_logscale = alpha_logscale
        init = torch.zeros(channels) if alpha_logscale else torch.ones(channels)
        self.alpha = nn.Parameter(init.clone())
        self.beta = nn.Parameter(init.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return SNAKE_KERNEL(x, *self.kernel_args())

    def kernel_args(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(alpha, 1 / beta)`` as ``[1, C, 1]``: the snake kernel's parameters."""
        alpha = self.alpha.view(1, -1, 1)
        beta = self.beta.view(1, -1, 1)
        if self.alpha_logscale:
            alpha = torch.exp(alpha)
            beta = torch.exp(beta)
        return alpha, 1.0 / (beta + 1e-9)


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

    @property
    def fused_ok(self) -> bool:
        """The layout :data:`AA_SNAKE_KERNEL` computes in one go: 2x, 12 taps each way, a snake."""
        up, low = self.upsample, self.downsample.lowpass
        return (up.ratio == 2 and up.kernel_size == 12 and up.pad == _UP_PAD and low.stride == 2
                and low.filter.shape[-1] == _DOWN_TAPS and (low.pad_left, low.pad_right) == (_DOWN_LEFT, _DOWN_RIGHT)
                and hasattr(self.act, "kernel_args"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused_ok:
            w_up, starts = self.upsample.phase_filters()
            if tuple(starts) == _UP_STARTS:
                return AA_SNAKE_KERNEL(x, w_up, *self.act.kernel_args(), self.downsample.lowpass.filter.view(-1))
        if not self.upsample.polyphase_ok:
            return self.downsample(self.act(self.upsample(x)))
        # The downsampler's replicate padding is part of the upsampled buffer: the activation is
        # pointwise, so activating the padded buffer equals padding the activated signal.
        low = self.downsample.lowpass
        up = self.upsample.polyphase(x, low.pad_left, low.pad_right)
        return low.filter_padded(self.act(up))


def make_snake(kind: str, channels: int, alpha_logscale: bool) -> nn.Module:
    if kind == "snake":
        return Snake(channels, alpha_logscale)
    if kind == "snakebeta":
        return SnakeBeta(channels, alpha_logscale)
    raise ValueError(f'unknown BigVGAN activation {kind!r} (expected "snake" or "snakebeta")')

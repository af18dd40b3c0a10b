"""Amphion's NSF-HiFiGAN generator (``models/vocoders/gan/generator/nsfhifigan.py``), quirks included.

``forward(mel [B, n_mels, T], f0 [B, T_f0] in Hz)`` -> audio ``[B, 1, min(T, T_f0) * upp]``. As in
the released model, the harmonic source never reaches the output (each stage doubles ``x``), so F0
matters only through its length and the source is not evaluated during synthesis; ``m_source`` and
``noise_convs`` are built so that checkpoints load strictly, and ``source`` reproduces the sine source
with injectable random draws (parity). Why: ``models/vocoders/README.md``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.core.weight_norm import WNConv1d
from models.vocoders.configs import NSFHiFiGANConfig
from models.vocoders.hifigan import FINAL_LRELU_SLOPE, build_resblocks, build_upsamplers
from models.vocoders.resblocks import LRELU_SLOPE, mrf_average


class SineGen(nn.Module):
    """Harmonic sine excitation (Xin Wang's NSF ``SineGen`` as used by Amphion).

    ``f0 [B, F]`` (Hz at frame rate, 0 = unvoiced) -> ``[B, F*upp, harmonic_num+1]``. Random draws, in
    this order: initial phases ``torch.rand(B, dim)`` (column 0 forced to 0) and the additive noise
    ``torch.randn_like(sine)``. Both can be passed in (``rand_ini``, ``noise``) to replay a recording.
    """

    def __init__(
        self,
        sample_rate: int,
        harmonic_num: int = 0,
        sine_amp: float = 0.1,
        noise_std: float = 0.003,
        voiced_threshold: float = 0.0,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.dim = harmonic_num + 1
        self.sine_amp = sine_amp
        self.noise_std = noise_std
        self.voiced_threshold = voiced_threshold

    @torch.no_grad()
    def forward(
        self,
        f0: torch.Tensor,
        upp: int,
        rand_ini: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f0 = f0.unsqueeze(-1)  # [B, F, 1]
        harmonics = torch.arange(1, self.dim + 1, device=f0.device).view(1, 1, -1)
        # Per-frame phase increment (in cycles per sample) of every harmonic, wrapped to [0, 1).
        rad = (f0 * harmonics / self.sample_rate) % 1
        if rand_ini is None:
            rand_ini = torch.rand(rad.shape[0], rad.shape[2], device=rad.device)
        rand_ini = rand_ini.to(rad).clone()
        rand_ini[:, 0] = 0  # the fundamental starts at phase 0, the overtones at random phases
        rad[:, 0, :] = rad[:, 0, :] + rand_ini

        # Frame-rate cumulative phase (float64 to keep long signals accurate), scaled to samples and
        # linearly interpolated to the audio rate; only used to find where the phase wraps.
        phase = torch.cumsum(rad.double(), dim=1).to(rad.dtype)
        phase = phase * upp
        phase = F.interpolate(phase.transpose(2, 1), scale_factor=upp, mode="linear", align_corners=True)
        phase = phase.transpose(2, 1)
        rad_up = F.interpolate(rad.transpose(2, 1), scale_factor=upp, mode="nearest").transpose(2, 1)
        phase = phase % 1
        wrapped = (phase[:, 1:, :] - phase[:, :-1, :]) < 0
        shift = torch.zeros_like(rad_up)
        shift[:, 1:, :] = wrapped * -1.0
        sines = torch.sin(torch.cumsum(rad_up.double() + shift.double(), dim=1) * 2 * math.pi)
        sines = sines.to(rad.dtype) * self.sine_amp

        uv = (f0 > self.voiced_threshold).to(rad.dtype)
        uv = F.interpolate(uv.transpose(2, 1), scale_factor=upp, mode="nearest").transpose(2, 1)
        # Voiced samples get a little noise; unvoiced ones are pure noise at a third of the sine amplitude.
        noise_amp = uv * self.noise_std + (1 - uv) * self.sine_amp / 3
        if noise is None:
            noise = torch.randn_like(sines)
        noise = noise_amp * noise.to(sines)
        return sines * uv + noise, uv, noise


class SourceModuleHnNSF(nn.Module):
    """Harmonics + noise merged into one excitation channel: ``tanh(Linear(dim -> 1)(SineGen(f0)))``."""

    def __init__(self, sample_rate: int, harmonic_num: int = 0, sine_amp: float = 0.1, noise_std: float = 0.003):
        super().__init__()
        self.l_sin_gen = SineGen(sample_rate, harmonic_num, sine_amp, noise_std)
        self.l_linear = nn.Linear(harmonic_num + 1, 1)

    def forward(
        self,
        f0: torch.Tensor,
        upp: int,
        rand_ini: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        sines, _, _ = self.l_sin_gen(f0, upp, rand_ini=rand_ini, noise=noise)
        return torch.tanh(self.l_linear(sines))


def _conv_out_len(conv: nn.Conv1d, length: int) -> int:
    (k,), (s,), (p,), (d,) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    return (length + 2 * p - d * (k - 1) - 1) // s + 1


class NSFHiFiGANGenerator(nn.Module):
    def __init__(self, cfg: NSFHiFiGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.num_upsamples = len(cfg.upsample_rates)
        self.upp = cfg.upsample_factor
        self.upsample_factor = self.upp
        self.m_source = SourceModuleHnNSF(cfg.sample_rate, cfg.harmonic_num)
        # One conv per stage bringing the audio-rate source down to that stage's rate
        # (stride = product of the remaining upsample rates; the last stage is already at audio rate).
        self.noise_convs = nn.ModuleList()
        rates = list(cfg.upsample_rates)
        for i in range(self.num_upsamples):
            c_cur = cfg.upsample_initial_channel // 2 ** (i + 1)
            if i + 1 < self.num_upsamples:
                s = math.prod(rates[i + 1 :])
                self.noise_convs.append(nn.Conv1d(1, c_cur, kernel_size=2 * s, stride=s, padding=s // 2))
            else:
                self.noise_convs.append(nn.Conv1d(1, c_cur, kernel_size=1))
        self.conv_pre = WNConv1d(cfg.n_mels, cfg.upsample_initial_channel, 7, padding=3)
        self.ups = build_upsamplers(cfg)
        self.resblocks = build_resblocks(cfg)
        last = cfg.upsample_initial_channel // 2**self.num_upsamples
        self.conv_post = WNConv1d(last, 1, 7, padding=3)

    def source(
        self, f0: torch.Tensor, rand_ini: torch.Tensor | None = None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The harmonic source ``[B, T_f0 * upp, 1]`` (computed by the reference, then discarded)."""
        return self.m_source(f0, self.upp, rand_ini=rand_ini, noise=noise)

    def source_lengths(self, f0_frames: int) -> list[int]:
        """Per stage, the length ``noise_convs[i](har_source)`` would have."""
        n = f0_frames * self.upp
        return [_conv_out_len(conv, n) for conv in self.noise_convs]

    def forward(self, mel: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
        limits = self.source_lengths(f0.shape[-1])
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            x = x[:, :, : min(x.shape[-1], limits[i])]
            x = x + x  # the reference's "x + x_source" with x_source = x (see module docstring)
            x = mrf_average(self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels], x)
        x = self.conv_post(F.leaky_relu(x, FINAL_LRELU_SLOPE))
        return torch.tanh(x)

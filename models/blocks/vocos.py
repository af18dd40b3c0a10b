"""Vocos: a ConvNeXt-1D backbone (:class:`VocosBackbone`, optionally with adaptive LayerNorm) and an
inverse-STFT head (:class:`ISTFTHead`, "same" padding: ``T`` frames give exactly ``T * hop``
samples); :class:`Vocos` is the two together.

Shapes and state-dict keys follow Amphion's ``models/codec/amphion_codec/vocos.py``. The numerics that
matter for parity: ``models/blocks/README.md``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

LAYER_NORM_EPS = 1e-6
# Largest magnitude the head may predict (exp of the log-magnitude is clipped to it).
MAX_MAGNITUDE = 100.0
PADDING_MODES = ("same", "center")


class AdaLayerNorm(nn.Module):
    """LayerNorm without affine parameters, then a per-condition scale and shift (Embedding tables).

    ``cond_id``: a scalar id, or ``[B]`` ids (one per batch item).
    """

    def __init__(self, num_embeddings: int, dim: int, eps: float = LAYER_NORM_EPS) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.scale = nn.Embedding(num_embeddings, dim)
        self.shift = nn.Embedding(num_embeddings, dim)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor) -> torch.Tensor:
        # x: [B, T, C]
        scale, shift = self.scale(cond_id), self.shift(cond_id)
        if scale.dim() == 2:  # [B, C] -> [B, 1, C]
            scale, shift = scale.unsqueeze(1), shift.unsqueeze(1)
        return F.layer_norm(x, (self.dim,), eps=self.eps) * scale + shift


def _channel_norm(dim: int, adanorm_num_embeddings: int | None) -> nn.Module:
    if adanorm_num_embeddings:
        return AdaLayerNorm(adanorm_num_embeddings, dim)
    return nn.LayerNorm(dim, eps=LAYER_NORM_EPS)


class ConvNeXtBlock(nn.Module):
    """``x + gamma * pwconv2(gelu(pwconv1(norm(dwconv(x)))))`` on ``[B, C, T]``.

    ``dwconv`` is a depthwise k7 conv; the two pointwise layers are Linears over channels.
    ``layer_scale_init_value`` None (or <= 0) means no ``gamma``.
    ``causal`` (DualCodec's ``is_causal``): the depthwise conv has no padding of its own and the input
    is left-padded with ``kernel - 1`` zeros instead, so frame ``t`` sees only frames ``<= t``.
    """

    def __init__(
        self,
        dim: int,
        intermediate_dim: int,
        layer_scale_init_value: float | None,
        adanorm_num_embeddings: int | None = None,
        *,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.causal = causal
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=0 if causal else 3, groups=dim)
        self.adanorm = bool(adanorm_num_embeddings)
        self.norm = _channel_norm(dim, adanorm_num_embeddings)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        if layer_scale_init_value is not None and layer_scale_init_value > 0:
            self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
        else:
            self.register_parameter("gamma", None)

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor | None = None) -> torch.Tensor:
        h = self.dwconv(F.pad(x, (self.dwconv.kernel_size[0] - 1, 0)) if self.causal else x)
        h = h.transpose(1, 2)  # [B, T, C]
        if self.adanorm:
            if cond_id is None:
                raise ValueError("this ConvNeXt block uses adaptive LayerNorm: pass cond_id")
            h = self.norm(h, cond_id)
        else:
            h = self.norm(h)
        h = self.pwconv2(self.act(self.pwconv1(h)))
        if self.gamma is not None:
            h = self.gamma * h
        return x + h.transpose(1, 2)


class VocosBackbone(nn.Module):
    """``[B, input_channels, T]`` -> ``[B, T, dim]``.

    embed (Conv1d k7, pad 3) -> norm -> ``num_layers`` ConvNeXt blocks -> final LayerNorm.
    ``layer_scale_init_value`` only sets the initial ``gamma`` (a falsy value means
    ``1 / num_layers``, as in the reference); loaded weights replace it.
    """

    def __init__(
        self,
        input_channels: int,
        dim: int,
        intermediate_dim: int,
        num_layers: int,
        layer_scale_init_value: float | None = None,
        adanorm_num_embeddings: int | None = None,
    ) -> None:
        super().__init__()
        self.input_channels, self.dim = input_channels, dim
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)
        self.adanorm = bool(adanorm_num_embeddings)
        self.norm = _channel_norm(dim, adanorm_num_embeddings)
        scale = layer_scale_init_value or 1.0 / num_layers
        self.convnext = nn.ModuleList(
            ConvNeXtBlock(dim, intermediate_dim, scale, adanorm_num_embeddings) for _ in range(num_layers)
        )
        self.final_layer_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.input_channels:
            raise ValueError(f"VocosBackbone expects [B, {self.input_channels}, T], got {tuple(x.shape)}")
        h = self.embed(x).transpose(1, 2)  # [B, T, dim]
        if self.adanorm:
            if cond_id is None:
                raise ValueError("this backbone uses adaptive LayerNorm: pass cond_id")
            h = self.norm(h, cond_id)
        else:
            h = self.norm(h)
        h = h.transpose(1, 2)
        for block in self.convnext:
            h = block(h, cond_id)
        return self.final_layer_norm(h.transpose(1, 2))


def _overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """``[B, W, T]`` frames -> ``[B, (T - 1) * hop + W]`` by summing each frame at ``t * hop``."""
    width, n_frames = frames.shape[1], frames.shape[2]
    length = (n_frames - 1) * hop + width
    out = F.fold(frames, output_size=(1, length), kernel_size=(1, width), stride=(1, hop))
    return out.reshape(frames.shape[0], length)


class ISTFT(nn.Module):
    """Inverse STFT of a complex spectrogram ``[B, n_fft // 2 + 1, T]`` -> ``[B, L]``.

    ``padding="same"``: ``L = T * hop`` (see the module docstring); ``"center"``: ``torch.istft``
    with ``center=True``. The Hann window is a persistent buffer (the checkpoints store it).
    """

    def __init__(self, n_fft: int, hop_length: int, win_length: int | None = None, padding: str = "same") -> None:
        super().__init__()
        if padding not in PADDING_MODES:
            raise ValueError(f"padding must be one of {PADDING_MODES}, got {padding!r}")
        win_length = n_fft if win_length is None else win_length
        if padding == "same" and win_length != n_fft:
            raise ValueError("'same' padding needs win_length == n_fft")
        if not 0 < hop_length <= win_length:
            raise ValueError(f"hop_length must be in (0, win_length={win_length}], got {hop_length}")
        self.n_fft, self.hop_length, self.win_length, self.padding = n_fft, hop_length, win_length, padding
        self.register_buffer("window", torch.hann_window(win_length))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if spec.dim() != 3:
            raise ValueError(f"ISTFT expects a [B, freq, T] complex spectrogram, got {tuple(spec.shape)}")
        if self.padding == "center":
            return torch.istft(spec, self.n_fft, self.hop_length, self.win_length, self.window, center=True)
        n_frames = spec.shape[-1]
        frames = torch.fft.irfft(spec, n=self.n_fft, dim=1, norm="backward") * self.window[None, :, None]
        signal = _overlap_add(frames, self.hop_length)
        envelope = _overlap_add(self.window.square()[None, :, None].expand(1, -1, n_frames), self.hop_length)[0]
        trim = (self.win_length - self.hop_length) // 2
        end = signal.shape[-1] - trim
        return signal[:, trim:end] / envelope[trim:end]

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop_length={self.hop_length}, win_length={self.win_length}, padding={self.padding!r}"


class ISTFTHead(nn.Module):
    """``[B, T, dim]`` -> waveform ``[B, T * hop]``: Linear to log-magnitude + phase, then ISTFT."""

    def __init__(self, dim: int, n_fft: int, hop_length: int, padding: str = "same") -> None:
        super().__init__()
        self.out = nn.Linear(dim, n_fft + 2)
        self.istft = ISTFT(n_fft, hop_length, n_fft, padding)

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """The complex spectrogram ``[B, n_fft // 2 + 1, T]`` the head predicts."""
        log_mag, phase = self.out(x).transpose(1, 2).chunk(2, dim=1)
        mag = torch.exp(log_mag).clamp(max=MAX_MAGNITUDE)
        return torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.istft(self.spectrum(x))


class Vocos(nn.Module):
    """Backbone + ISTFT head: ``[B, input_channels, T]`` -> ``[B, 1, T * hop_size]`` (keys ``backbone.*``, ``head.*``)."""

    def __init__(
        self,
        input_channels: int,
        dim: int,
        intermediate_dim: int,
        num_layers: int,
        n_fft: int,
        hop_size: int,
        padding: str = "same",
        adanorm_num_embeddings: int | None = None,
    ) -> None:
        super().__init__()
        self.hop_size = hop_size
        self.backbone = VocosBackbone(
            input_channels, dim, intermediate_dim, num_layers, adanorm_num_embeddings=adanorm_num_embeddings
        )
        self.head = ISTFTHead(dim, n_fft, hop_size, padding)

    def forward(self, x: torch.Tensor, cond_id: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.backbone(x, cond_id)).unsqueeze(1)

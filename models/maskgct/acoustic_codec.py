"""MaskGCT's acoustic codec: Amphion's ``CodecEncoder`` + ``CodecDecoder``
(``models/codec/amphion_codec/codec.py``) in the configuration MaskGCT uses (factorized RVQ and a
Vocos decoder).

* :class:`CodecEncoder`: 24 kHz waveform ``[B, 1, L]`` -> latent ``[B, 256, L / hop]`` (hop 480,
  50 Hz): WN-conv k7, one DAC encoder block per stride (channels doubling), Snake, WN-conv k3
  (optionally tanh). Keys ``block.<i>...`` (official file ``acoustic_codec/model.safetensors``).
* :class:`CodecDecoder`: the residual VQ (``quantizer.*``) and the Vocos vocoder (``model.*``;
  official file ``acoustic_codec/model_1.safetensors``). ``quantize`` gives codes
  ``[nq, B, T]``, ``vq2emb`` sums the first ``n`` stages' vectors, ``decode`` makes the waveform
  ``[B, 1, T * hop]``.
* :class:`AcousticCodec` pairs them with MaskGCT's code layout ``[B, T, nq]`` (what S2A consumes).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.blocks.quantizers import ResidualVQ
from models.blocks.snake_conv import EncoderBlock, Snake1d
from models.blocks.vocos import Vocos
from models.core.weight_norm import WNConv1d
from models.maskgct.configs import AcousticCodecConfig, AcousticDecoderConfig, AcousticEncoderConfig


class CodecEncoder(nn.Module):
    def __init__(self, config: AcousticEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.hop_length = config.hop_length
        self.out_channels = config.out_channels
        width = config.d_model
        layers: list[nn.Module] = [WNConv1d(1, width, kernel_size=7, padding=3)]
        for stride in config.up_ratios:
            width *= 2
            layers.append(EncoderBlock(width, stride=stride))
        layers += [Snake1d(width), WNConv1d(width, config.out_channels, kernel_size=3, padding=1)]
        if config.use_tanh:
            layers.append(nn.Tanh())
        self.block = nn.Sequential(*layers)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform ``[B, 1, L]`` (or ``[B, L]``) -> latent ``[B, out_channels, T]``; ``T = L / hop``
        when ``L`` is a multiple of the hop (no padding is added, as in the reference)."""
        if wav.dim() == 2:
            wav = wav.unsqueeze(1)
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"expected a waveform [B, 1, L], got {tuple(wav.shape)}")
        return self.block(wav)


class CodecDecoder(nn.Module):
    def __init__(self, config: AcousticDecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.in_channels = config.in_channels
        self.num_quantizers = config.num_quantizers
        self.codebook_size = config.codebook_size
        self.hop_length = config.hop_size
        self.quantizer = ResidualVQ(
            config.in_channels, config.num_quantizers, config.codebook_size, config.codebook_dim,
            use_l2_normalize=config.use_l2_normalize,
        )
        self.model = Vocos(
            config.in_channels, config.vocos_dim, config.vocos_intermediate_dim, config.vocos_num_layers,
            n_fft=config.n_fft, hop_size=config.hop_size, padding=config.padding,
        )

    def quantize(self, latent: torch.Tensor, n_quantizers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent ``[B, C, T]`` -> ``(quantized [B, C, T], codes [n, B, T])`` (first ``n`` stages, default all)."""
        return self.quantizer(latent, n_quantizers=n_quantizers)

    def vq2emb(self, codes: torch.Tensor, n_quantizers: int | None = None) -> torch.Tensor:
        """Codes ``[nq, B, T]`` -> ``[B, C, T]``, the sum over the first ``n_quantizers`` (default all)."""
        return self.quantizer.vq2emb(codes, n_quantizers=n_quantizers)

    def decode(self, emb: torch.Tensor) -> torch.Tensor:
        """Quantized latent ``[B, C, T]`` -> waveform ``[B, 1, T * hop]``."""
        return self.model(emb)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.decode(emb)


class AcousticCodec(nn.Module):
    """Encoder + decoder with MaskGCT's code layout ``[B, T, nq]``."""

    def __init__(self, encoder: CodecEncoder, decoder: CodecDecoder) -> None:
        super().__init__()
        # Validates the pairing (latent width, hop).
        self.config = AcousticCodecConfig(encoder.config, decoder.config)
        self.hop_length = self.config.hop_length
        self.num_quantizers = decoder.num_quantizers
        self.encoder = encoder
        self.decoder = decoder

    @classmethod
    def from_config(cls, config: AcousticCodecConfig) -> "AcousticCodec":
        """Untrained modules of the right shapes."""
        return cls(CodecEncoder(config.encoder), CodecDecoder(config.decoder))

    def encode(self, wav: torch.Tensor, n_quantizers: int | None = None) -> torch.Tensor:
        """Waveform ``[B, 1, L]`` -> codes ``[B, T, n]`` (``extract_acoustic_code``)."""
        _, codes = self.decoder.quantize(self.encoder(wav), n_quantizers=n_quantizers)
        return codes.permute(1, 2, 0)

    def decode(self, codes: torch.Tensor, n_quantizers: int | None = None) -> torch.Tensor:
        """Codes ``[B, T, nq]`` -> waveform ``[B, 1, T * hop]``, summing the first ``n_quantizers``
        layers (default: all the codes hold)."""
        if codes.dim() != 3:
            raise ValueError(f"expected codes [B, T, n_quantizers], got {tuple(codes.shape)}")
        n = codes.shape[-1] if n_quantizers is None else n_quantizers
        return self.decoder.decode(self.decoder.vq2emb(codes.permute(2, 0, 1), n_quantizers=n))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform -> codes -> waveform."""
        return self.decode(self.encode(wav))

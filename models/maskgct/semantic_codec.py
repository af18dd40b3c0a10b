"""MaskGCT's semantic codec: Amphion's ``RepCodec`` (``models/codec/kmeans/repcodec_model.py``).

It turns normalised w2v-bert-2.0 layer-17 features ``[B, T, hidden]`` (50 Hz) into semantic tokens
and back:

* ``encoder`` = ``Sequential(VocosBackbone(hidden -> vocos_dim), Linear(vocos_dim -> hidden))``;
* ``quantizer`` = residual VQ over ``num_quantizers`` (officially 1) factorized stages with
  L2-normalised (cosine) matching;
* ``decoder`` has the encoder's structure and maps the quantized vectors back to features.

State-dict keys: ``encoder.0.*`` / ``encoder.1.*``, ``decoder.0.*`` / ``decoder.1.*``,
``quantizer.quantizers.<i>.*`` (plus ``down.*`` / ``up.*`` when ``downsample_scale > 1``; the
reference creates those convs but never uses them).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.blocks.quantizers import ResidualVQ
from models.blocks.vocos import VocosBackbone
from models.maskgct.configs import SemanticCodecConfig


def _vocos_stack(config: SemanticCodecConfig) -> nn.Sequential:
    return nn.Sequential(
        VocosBackbone(
            config.hidden_size, config.vocos_dim, config.vocos_intermediate_dim, config.vocos_num_layers
        ),
        nn.Linear(config.vocos_dim, config.hidden_size),
    )


class SemanticCodec(nn.Module):
    """RepCodec. Features ``[B, T, hidden]`` <-> codes (``int64``)."""

    def __init__(self, config: SemanticCodecConfig) -> None:
        super().__init__()
        self.config = config
        self.hidden_size = config.hidden_size
        self.num_quantizers = config.num_quantizers
        self.codebook_size = config.codebook_size
        if config.downsample_scale > 1:
            h = config.hidden_size
            self.down = nn.Conv1d(h, h, kernel_size=3, stride=2, padding=1)
            self.up = nn.Conv1d(h, h, kernel_size=3, stride=1, padding=1)
        self.encoder = _vocos_stack(config)
        self.decoder = _vocos_stack(config)
        self.quantizer = ResidualVQ(
            config.hidden_size, config.num_quantizers, config.codebook_size, config.codebook_dim,
            use_l2_normalize=True,
        )

    def _check_features(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.hidden_size:
            raise ValueError(f"expected features [B, T, {self.hidden_size}], got {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``[B, T, hidden]`` -> the pre-VQ latent ``[B, hidden, T]``."""
        self._check_features(x)
        return self.encoder(x.transpose(1, 2)).transpose(1, 2)

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``[B, T, hidden]`` -> ``(codes, quantized [B, T, hidden])``.

        ``codes`` is ``[B, T]`` with one quantizer (the official model), else ``[nq, B, T]``,
        exactly as the reference's ``quantize`` returns them.
        """
        quantized, codes = self.quantizer(self.encode(x))
        if codes.shape[0] == 1:
            codes = codes[0]
        return codes, quantized.transpose(1, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features -> ``(reconstruction [B, T, hidden], codes [nq, B, T])`` (the reference's forward,
        without its training losses)."""
        quantized, codes = self.quantizer(self.encode(x))
        return self.decode(quantized), codes

    def vq2emb(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, T]`` (single quantizer) or ``[nq, B, T]`` -> quantized vectors ``[B, hidden, T]``."""
        if codes.dim() == 2:
            codes = codes.unsqueeze(0)
        return self.quantizer.vq2emb(codes)

    def decode(self, emb: torch.Tensor) -> torch.Tensor:
        """Quantized vectors ``[B, hidden, T]`` -> reconstructed features ``[B, T, hidden]``."""
        if emb.dim() != 3 or emb.shape[1] != self.hidden_size:
            raise ValueError(f"expected quantized vectors [B, {self.hidden_size}, T], got {tuple(emb.shape)}")
        return self.decoder(emb)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes -> reconstructed features ``[B, T, hidden]``."""
        return self.decode(self.vq2emb(codes))

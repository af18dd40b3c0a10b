"""FACodec's decoder (Amphion ``FACodecDecoder``): factorised quantisers, timbre encoder and the
waveform generator, with the official ``ns3_facodec_decoder.bin`` key layout (minus the
training-only predictor heads, which are not built; the loader skips their keys).

* ``quantizer.0`` prosody RVQ (``vq_num_q_p`` codebooks) and ``quantizer.1`` content RVQ
  (``vq_num_q_c``) both quantise the latent ``x``; ``quantizer.2`` (acoustic detail, ``vq_num_q_r``)
  quantises ``x - (q_prosody + q_content)``. Codes ``vq_id`` are ``[n, B, T]`` int64, quantiser-major:
  prosody rows first, then content, then acoustic detail (officially rows 0 | 1-2 | 3-5).
* ``timbre_encoder`` runs on the pre-quantisation ``x``; the timbre vector is its time-mean.
* :meth:`FACodecDecoder.inference`: ``(gamma, beta) = timbre_linear(timbre)`` (gamma first),
  ``x`` normalised over channels (LayerNorm without affine), ``x * gamma + beta``, then ``model``:
  conv k7, one :class:`DecoderBlock` per stride (width halves), SnakeBeta, conv k7 -> 1, tanh.
  Output ``[B, 1, T * hop]``: each transposed conv gives exactly ``stride * n`` samples.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.core.weight_norm import WNConv1d
from models.facodec.configs import FACodecConfig
from models.facodec.layers import WNConvTranspose1dOutPad, residual_stack, snake_beta, stride_padding
from models.facodec.quantizers import FactorizedRVQ
from models.facodec.timbre import TimbreEncoder


class DecoderBlock(nn.Module):
    """Activation, transposed conv (x ``stride`` samples, ``in -> out`` channels), residual units."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            snake_beta(in_channels),
            WNConvTranspose1dOutPad(
                in_channels, out_channels, kernel_size=2 * stride, stride=stride,
                padding=stride_padding(stride), output_padding=stride % 2,
            ),
            *residual_stack(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class FACodecDecoder(nn.Module):
    def __init__(self, config: FACodecConfig) -> None:
        super().__init__()
        self.config = config
        dec = config.decoder
        dim = dec.in_channels
        groups = [(dec.vq_num_q_p, dec.codebook_size_prosody), (dec.vq_num_q_c, dec.codebook_size_content)]
        if dec.vq_num_q_r > 0:
            groups.append((dec.vq_num_q_r, dec.codebook_size_residual))
        self.quantizer = nn.ModuleList(
            FactorizedRVQ(dec.vq_dim, count, log2_size, dec.codebook_dim) for count, log2_size in groups
        )

        width = dec.upsample_initial_channel
        layers: list[nn.Module] = [WNConv1d(dim, width, kernel_size=7, padding=3)]
        for stride in dec.up_ratios:
            layers.append(DecoderBlock(width, width // 2, stride))
            width //= 2
        layers += [snake_beta(width), WNConv1d(width, 1, kernel_size=7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)

        self.timbre_encoder = TimbreEncoder(config.timbre_encoder)
        self.timbre_linear = nn.Linear(dim, 2 * dim)
        self.timbre_norm = nn.LayerNorm(dim, elementwise_affine=False)

    @property
    def group_sizes(self) -> tuple[int, int, int]:
        """Codebooks per group: (prosody, content, acoustic detail)."""
        dec = self.config.decoder
        return dec.vq_num_q_p, dec.vq_num_q_c, dec.vq_num_q_r

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``x`` ``[B, D, T]`` -> ``(vq_post_emb [B, D, T], vq_id [n, B, T], per-group quantised [B, D, T])``."""
        prosody, prosody_codes = self.quantizer[0](x)
        content, content_codes = self.quantizer[1](x)
        quantized, codes = [prosody, content], [prosody_codes, content_codes]
        if len(self.quantizer) > 2:
            detail, detail_codes = self.quantizer[2](x - (prosody + content))
            quantized.append(detail)
            codes.append(detail_codes)
        vq_post_emb = quantized[0]
        for group in quantized[1:]:
            vq_post_emb = vq_post_emb + group
        return vq_post_emb, torch.cat(codes), quantized

    def timbre(self, x: torch.Tensor, *, reference_batch_positions: bool = False) -> torch.Tensor:
        """Timbre vector ``[B, D]`` of the pre-quantisation latent ``x`` ``[B, D, T]``.

        ``reference_batch_positions``: reproduce the reference's batch-indexed positional encoding
        (see :mod:`models.facodec.timbre`); off, every item is encoded as if it were alone.
        """
        hidden = self.timbre_encoder(x.transpose(1, 2), reference_batch_positions=reference_batch_positions)
        return hidden.mean(dim=1)

    def forward(
        self, x: torch.Tensor, *, reference_batch_positions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """The reference's ``forward(x, vq=True)`` in eval mode, without its all-zero commitment
        losses: ``(vq_post_emb, vq_id, [q_prosody, q_content, q_detail], timbre)``."""
        if x.dim() != 3 or x.shape[1] != self.config.width:
            raise ValueError(f"FACodecDecoder expects latents [B, {self.config.width}, T], got {tuple(x.shape)}")
        vq_post_emb, vq_id, quantized = self.quantize(x)
        return vq_post_emb, vq_id, quantized, self.timbre(x, reference_batch_positions=reference_batch_positions)

    def vq2emb(self, vq_id: torch.Tensor, use_residual_code: bool = True) -> torch.Tensor:
        """Codes ``[n, B, T]`` -> summed quantised vectors ``[B, D, T]``; ``use_residual_code=False``
        leaves out the acoustic-detail rows (prosody + content only)."""
        n_p, n_c, n_r = self.group_sizes
        allowed = {n_p + n_c + n_r} if use_residual_code else {n_p + n_c, n_p + n_c + n_r}
        if vq_id.dim() != 3 or vq_id.shape[0] not in allowed:
            raise ValueError(f"vq_id must be [{n_p + n_c + n_r}, B, T], got {tuple(vq_id.shape)}")
        emb = self.quantizer[0].vq2emb(vq_id[:n_p])
        emb = emb + self.quantizer[1].vq2emb(vq_id[n_p : n_p + n_c])
        if n_r > 0 and use_residual_code:
            emb = emb + self.quantizer[2].vq2emb(vq_id[n_p + n_c : n_p + n_c + n_r])
        return emb

    def inference(self, x: torch.Tensor, timbre: torch.Tensor) -> torch.Tensor:
        """Quantised latents ``[B, D, T]`` + timbre ``[B, D]`` -> waveform ``[B, 1, T * hop]`` in [-1, 1]."""
        if x.dim() != 3 or x.shape[1] != self.config.width:
            raise ValueError(f"expected latents [B, {self.config.width}, T], got {tuple(x.shape)}")
        if timbre.shape != (x.shape[0], self.config.width):
            raise ValueError(f"expected timbre [{x.shape[0]}, {self.config.width}], got {tuple(timbre.shape)}")
        gamma, beta = self.timbre_linear(timbre).unsqueeze(2).chunk(2, dim=1)
        x = self.timbre_norm(x.transpose(1, 2)).transpose(1, 2)
        return self.model(x * gamma + beta)

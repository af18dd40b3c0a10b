"""FACodec's factorised quantisers (Amphion ``ns3_codec/quantize``: ``FactorizedVectorQuantize`` and
``ResidualVQ``), inference only.

Not the shared :mod:`models.blocks.quantizers`: FACodec's projections are weight-normed **Linear**
layers applied on ``[B, T, D]`` (keys ``in_proj`` / ``out_proj``, ``weight_g`` ``[out, 1]``) and its
codebook key is ``_codebook.weight``; the shared blocks use 1x1 convs named ``in_project``.

One stage on ``z`` ``[B, D, T]``: ``z_e = in_proj(z)`` (``D -> codebook_dim``); the code of a frame is
the row of the codebook nearest to ``z_e`` after L2-normalising both (``argmax -(|e|^2 - 2 e.c + |c|^2)``,
written out as the reference does so near-ties resolve alike); the quantised vector is the **raw**
codebook row through ``out_proj``. The RVQ runs its stages on the running residual.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.facodec.layers import WNLinear


class FactorizedVQ(nn.Module):
    def __init__(self, dim: int, codebook_size: int, codebook_dim: int) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        if dim != codebook_dim:
            self.in_proj: nn.Module = WNLinear(dim, codebook_dim)
            self.out_proj: nn.Module = WNLinear(codebook_dim, dim)
        else:  # the reference skips the projections when they would be square
            self.in_proj = nn.Identity()
            self.out_proj = nn.Identity()
        self._codebook = nn.Embedding(codebook_size, codebook_dim)

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, T]`` of projected latents ``z_e`` ``[B, T, codebook_dim]``."""
        flat = F.normalize(z_e.reshape(-1, z_e.shape[-1]))
        book = F.normalize(self._codebook.weight)
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ book.t() + book.pow(2).sum(1, keepdim=True).t()
        return (-dist).argmax(dim=1).view(z_e.shape[0], z_e.shape[1])

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z`` ``[B, D, T]`` -> ``(quantised [B, D, T], codes [B, T])``."""
        z_e = self.in_proj(z.transpose(1, 2))
        codes = self.nearest(z_e)
        z_q = self._codebook(codes)
        z_q = z_e + (z_q - z_e)  # the reference's straight-through form, kept for its float rounding
        return self.out_proj(z_q).transpose(1, 2), codes

    def vq2emb(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes`` ``[B, T]`` -> ``out_proj(codebook rows)`` ``[B, D, T]``."""
        return self.out_proj(self._codebook(codes)).transpose(1, 2)


class FactorizedRVQ(nn.Module):
    """``num_quantizers`` :class:`FactorizedVQ` stages of ``2**log2_codebook_size`` codes each."""

    def __init__(self, dim: int, num_quantizers: int, log2_codebook_size: int, codebook_dim: int) -> None:
        super().__init__()
        self.codebook_size = 2**log2_codebook_size
        self.layers = nn.ModuleList(
            FactorizedVQ(dim, self.codebook_size, codebook_dim) for _ in range(num_quantizers)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``[B, D, T]`` -> ``(sum of the stages' vectors [B, D, T], codes [n, B, T])``."""
        residual, total, codes = x, torch.zeros_like(x), []
        for layer in self.layers:
            quantized, layer_codes = layer(residual)
            residual = residual - quantized
            total = total + quantized
            codes.append(layer_codes)
        return total, torch.stack(codes)

    def vq2emb(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes`` ``[n, B, T]`` -> the sum of the stages' vectors ``[B, D, T]``."""
        if codes.shape[0] != len(self.layers):
            raise ValueError(f"expected codes for {len(self.layers)} codebooks, got {codes.shape[0]}")
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise TypeError(f"codes must be integers, got {codes.dtype}")
        if codes.numel():  # checked on every device: a bad id would be a device-side assert on CUDA
            lo, hi = int(codes.min()), int(codes.max())
            if lo < 0 or hi >= self.codebook_size:
                raise ValueError(f"codes must lie in [0, {self.codebook_size}), got values in [{lo}, {hi}]")
        total = self.layers[0].vq2emb(codes[0])
        for layer, layer_codes in zip(self.layers[1:], codes[1:]):
            total = total + layer.vq2emb(layer_codes)
        return total

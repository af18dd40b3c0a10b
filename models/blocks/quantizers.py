"""Factorized vector quantization and residual VQ (Amphion's ``FactorizedVectorQuantize`` /
``ResidualVQ`` with ``quantizer_type="fvq"``), inference only.

:class:`FactorizedVQ` is one stage (project, nearest codebook row by cosine or euclidean distance,
raw row projected back); :class:`ResidualVQ` runs stages on the running residual, returns int64
codes ``[n_quantizers, B, T]`` and rebuilds the sum from codes (:meth:`ResidualVQ.vq2emb`). Keys are
the official checkpoints'; ``projection_names`` / ``always_project`` build DualCodec's layout. The
stage step by step: ``models/blocks/README.md``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.core.weight_norm import WNConv1d


class FactorizedVQ(nn.Module):
    def __init__(
        self,
        input_dim: int,
        codebook_size: int,
        codebook_dim: int,
        use_l2_normalize: bool = True,
        *,
        projection_names: tuple[str, str] = ("in_project", "out_project"),
        always_project: bool = False,
    ) -> None:
        super().__init__()
        self.input_dim, self.codebook_size, self.codebook_dim = input_dim, codebook_size, codebook_dim
        self.use_l2_normalize = use_l2_normalize
        self._in_name, self._out_name = projection_names
        if always_project or input_dim != codebook_dim:
            self.add_module(self._in_name, WNConv1d(input_dim, codebook_dim, kernel_size=1))
            self.add_module(self._out_name, WNConv1d(codebook_dim, input_dim, kernel_size=1))
        else:
            self.add_module(self._in_name, nn.Identity())
            self.add_module(self._out_name, nn.Identity())
        self.codebook = nn.Embedding(codebook_size, codebook_dim)

    def project_in(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, D, T]`` -> ``[B, codebook_dim, T]``."""
        return self._modules[self._in_name](z)

    def project_out(self, z_q: torch.Tensor) -> torch.Tensor:
        """``[B, codebook_dim, T]`` -> ``[B, D, T]``."""
        return self._modules[self._out_name](z_q)

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, T]`` of the projected latents ``z_e`` ``[B, codebook_dim, T]``."""
        batch = z_e.shape[0]
        flat = z_e.transpose(1, 2).reshape(-1, self.codebook_dim)  # [B*T, d]
        book = self.codebook.weight
        if self.use_l2_normalize:
            flat, book = F.normalize(flat, dim=1), F.normalize(book, dim=1)
        # Squared distance written out as the reference does (|e|^2 - 2 e.c + |c|^2), so near-ties
        # resolve the same way.
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * (flat @ book.t()) + book.pow(2).sum(1)[None, :]
        return (-dist).argmax(dim=1).view(batch, -1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Raw codebook rows for ``codes`` ``[B, T]`` -> ``[B, codebook_dim, T]`` (before out_project)."""
        return F.embedding(codes, self.codebook.weight).transpose(1, 2)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z`` ``[B, D, T]`` -> ``(quantized [B, D, T], codes [B, T])``."""
        z_e = self.project_in(z)
        codes = self.nearest(z_e)
        z_q = self.lookup(codes)
        # The reference's straight-through form, kept for its float rounding (equals z_q up to it).
        z_q = z_e + (z_q - z_e)
        return self.project_out(z_q), codes

    def vq2emb(self, codes: torch.Tensor) -> torch.Tensor:
        """``codes`` ``[B, T]`` -> out-projected vectors ``[B, D, T]``."""
        self._check_codes(codes)
        return self.project_out(self.lookup(codes))

    def _check_codes(self, codes: torch.Tensor) -> None:
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise TypeError(f"codes must be integers, got {codes.dtype}")
        if codes.numel() and not torch.compiler.is_compiling():
            # Checked on every device: an out-of-range id would be a device-side assert on CUDA.
            lo, hi = int(codes.min()), int(codes.max())
            if lo < 0 or hi >= self.codebook_size:
                raise ValueError(f"codes must lie in [0, {self.codebook_size}), got [{lo}, {hi}]")


class ResidualVQ(nn.Module):
    """``num_quantizers`` factorized stages applied to the running residual (eval mode: no dropout)."""

    def __init__(
        self,
        input_dim: int,
        num_quantizers: int,
        codebook_size: int,
        codebook_dim: int,
        use_l2_normalize: bool = True,
        *,
        projection_names: tuple[str, str] = ("in_project", "out_project"),
        always_project: bool = False,
    ) -> None:
        super().__init__()
        if num_quantizers < 1:
            raise ValueError("num_quantizers must be >= 1")
        self.input_dim, self.num_quantizers = input_dim, num_quantizers
        self.codebook_size, self.codebook_dim = codebook_size, codebook_dim
        self.quantizers = nn.ModuleList(
            FactorizedVQ(input_dim, codebook_size, codebook_dim, use_l2_normalize,
                         projection_names=projection_names, always_project=always_project)
            for _ in range(num_quantizers)
        )

    def _count(self, n_quantizers: int | None) -> int:
        if n_quantizers is None:
            return self.num_quantizers
        n = int(n_quantizers)
        if not 1 <= n <= self.num_quantizers:
            raise ValueError(f"n_quantizers must be in [1, {self.num_quantizers}], got {n_quantizers}")
        return n

    def forward(self, z: torch.Tensor, n_quantizers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``z`` ``[B, D, T]`` -> ``(quantized [B, D, T], codes [n, B, T])`` using the first ``n`` stages."""
        if z.dim() != 3 or z.shape[1] != self.input_dim:
            raise ValueError(f"ResidualVQ expects [B, {self.input_dim}, T], got {tuple(z.shape)}")
        residual = z
        quantized = torch.zeros_like(z)
        codes = []
        for stage in self.quantizers[: self._count(n_quantizers)]:
            z_q, stage_codes = stage(residual)
            quantized = quantized + z_q
            residual = residual - z_q
            codes.append(stage_codes)
        return quantized, torch.stack(codes)

    def vq2emb(self, codes: torch.Tensor, n_quantizers: int | None = None) -> torch.Tensor:
        """``codes`` ``[nq, B, T]`` -> the sum of the first ``n_quantizers`` (default: all) stages' vectors."""
        if codes.dim() != 3:
            raise ValueError(f"codes must be [n_quantizers, B, T], got {tuple(codes.shape)}")
        n = self._count(n_quantizers)
        if codes.shape[0] < n:
            raise ValueError(f"{n} quantizers asked for, but codes hold only {codes.shape[0]} layers")
        emb = self.quantizers[0].vq2emb(codes[0])
        for i in range(1, n):
            emb = emb + self.quantizers[i].vq2emb(codes[i])
        return emb

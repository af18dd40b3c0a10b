"""FACodec's timbre encoder (Amphion ``ns3_codec/transformer.py::TransformerEncoder`` as built by
``FACodecDecoder``): a small pre-LN transformer over the pre-quantisation latents whose time-mean is
the speaker (timbre) vector.

:meth:`TimbreEncoder.forward` gives every batch item the positional encoding it gets when encoded
alone; ``reference_batch_positions=True`` reproduces the reference's batch-position indexing, for
parity. The layer and the quirk: ``models/facodec/README.md``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.facodec.configs import TimbreEncoderConfig

# Length of the reference's sinusoid table (a persistent buffer of the official checkpoint).
POSITION_TABLE_SIZE = 5000


def sinusoid_table(size: int, dim: int) -> torch.Tensor:
    """``[size, 1, dim]`` with ``[p, 0, 2i] = sin(p w_i)``, ``[p, 0, 2i+1] = cos(p w_i)``,
    ``w_i = exp(-2i ln(10000) / dim)``; computed with the reference's dtypes so it equals the stored buffer."""
    position = torch.arange(size).unsqueeze(1)
    rate = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    table = torch.zeros(size, 1, dim)
    table[:, 0, 0::2] = torch.sin(position * rate)
    table[:, 0, 1::2] = torch.cos(position * rate)
    return table


class BatchIndexedPositionalEncoding(nn.Module):
    """Adds a row of the sinusoid table to every frame (see the module docstring for which row)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoid_table(POSITION_TABLE_SIZE, dim))

    def forward(self, x: torch.Tensor, reference_batch_positions: bool) -> torch.Tensor:
        if not reference_batch_positions:
            return x + self.pe[0]
        if x.shape[0] > self.pe.shape[0]:
            raise ValueError(f"the reference's positional table has {self.pe.shape[0]} rows, batch is {x.shape[0]}")
        return x + self.pe[: x.shape[0]]


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter layout (packed q/k/v)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames, dim = x.shape
        q, k, v = (
            t.view(batch, frames, self.heads, dim // self.heads).transpose(1, 2)
            for t in F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(batch, frames, dim))


class ConvFeedForward(nn.Module):
    """Conv over time (``hidden -> filter``), ReLU, Linear (``filter -> hidden``), on ``[B, T, D]``."""

    def __init__(self, dim: int, filter_size: int, kernel_size: int) -> None:
        super().__init__()
        self.ffn_1 = nn.Conv1d(dim, filter_size, kernel_size, padding=kernel_size // 2)
        self.ffn_2 = nn.Linear(filter_size, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn_2(F.relu(self.ffn_1(x.transpose(1, 2)).transpose(1, 2)))


class TimbreEncoderLayer(nn.Module):
    def __init__(self, config: TimbreEncoderConfig) -> None:
        super().__init__()
        dim = config.encoder_hidden
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attn = SelfAttention(dim, config.encoder_head)
        self.ln_2 = nn.LayerNorm(dim)
        self.ffn = ConvFeedForward(dim, config.conv_filter_size, config.conv_kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.ln_1(x))
        return x + self.ffn(self.ln_2(x))


class TimbreEncoder(nn.Module):
    def __init__(self, config: TimbreEncoderConfig) -> None:
        super().__init__()
        self.position_emb = BatchIndexedPositionalEncoding(config.encoder_hidden)
        self.layers = nn.ModuleList(TimbreEncoderLayer(config) for _ in range(config.encoder_layer))
        self.last_ln = nn.LayerNorm(config.encoder_hidden)

    def forward(self, x: torch.Tensor, *, reference_batch_positions: bool = False) -> torch.Tensor:
        """``x`` ``[B, T, D]`` -> ``[B, T, D]``."""
        x = self.position_emb(x, reference_batch_positions)
        for layer in self.layers:
            x = layer(x)
        return self.last_ln(x)

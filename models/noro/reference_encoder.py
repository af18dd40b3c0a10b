"""Noro's reference (speaker) encoder: reference mel -> speaker query embeddings.

``x = in_linear(mel)``; the positional table is added (indexed by BATCH position, see
:class:`BatchIndexedSinusoid`); ``layers`` pre-norm transformer layers (self-attention, then a
Conv1d -> SiLU -> Linear feed-forward); a final LayerNorm; then ``num_queries`` learned queries attend
to the encoded frames (``hidden // 64`` heads). Module names are the checkpoint's
(``reference_encoder.transformer_encoder.layers.N.self_attn.in_proj_weight``, ...).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.noro.configs import ReferenceEncoderConfig

__all__ = ["BatchIndexedSinusoid", "ReferenceEncoder"]

#: The table length the reference builds (a persistent buffer, so it is in the checkpoint).
POSITION_TABLE_LEN = 5000


class BatchIndexedSinusoid(nn.Module):
    """The reference's positional encoding, quirk included.

    ``pe`` is ``[max_len, 1, d]`` (sin on even, cos on odd channels) and is added as ``x + pe[:x.size(0)]``
    to ``x`` of shape ``[B, T, d]``: item ``b`` of a batch gets the vector of position ``b`` on every
    frame, not a per-frame position. Served one request at a time (batch 1) every item gets
    ``pe[0] = [0, 1, 0, 1, ...]``, which is what the official inference does; batched items beyond the
    first would each get another offset, exactly as in the reference.
    """

    def __init__(self, dim: int, max_len: int = POSITION_TABLE_LEN) -> None:
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        rates = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        table = torch.zeros(max_len, 1, dim)
        table[:, 0, 0::2] = torch.sin(position * rates)
        table[:, 0, 1::2] = torch.cos(position * rates)
        self.register_buffer("pe", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(0) > self.pe.size(0):
            raise ValueError(f"batch of {x.size(0)} exceeds the positional table ({self.pe.size(0)})")
        return x + self.pe[: x.size(0)]


class ConvFeedForward(nn.Module):
    """``ffn_2(silu(ffn_1(x)))`` with ``ffn_1`` a same-length Conv1d over time (or a Linear in the
    older layout, ``use_new_ffn`` false)."""

    def __init__(self, dim: int, filter_size: int, kernel: int, conv: bool) -> None:
        super().__init__()
        self.conv = conv
        self.ffn_1 = nn.Conv1d(dim, filter_size, kernel, padding=kernel // 2) if conv else nn.Linear(dim, filter_size)
        self.ffn_2 = nn.Linear(filter_size, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ffn_1(x.transpose(1, 2)).transpose(1, 2) if self.conv else self.ffn_1(x)
        return self.ffn_2(F.silu(h))


class EncoderLayer(nn.Module):
    """Pre-norm: ``x + attn(ln_1(x))`` then ``x + ffn(ln_2(x))``."""

    def __init__(self, cfg: ReferenceEncoderConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.hidden)
        self.ln_2 = nn.LayerNorm(cfg.hidden)
        self.self_attn = nn.MultiheadAttention(cfg.hidden, cfg.heads, batch_first=True)
        self.ffn = ConvFeedForward(cfg.hidden, cfg.ffn_filter, cfg.ffn_kernel, cfg.conv_ffn)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        # need_weights left at its default, as the reference calls it: the same attention kernels run.
        x = x + self.self_attn(h, h, h, key_padding_mask=padding)[0]
        return x + self.ffn(self.ln_2(x))


class TransformerStack(nn.Module):
    """``position_emb`` -> layers -> ``last_ln`` (the reference's ``TransformerEncoder`` as Noro's
    reference encoder configures it: no skip connections, no conditional norm, no step embedding)."""

    def __init__(self, cfg: ReferenceEncoderConfig) -> None:
        super().__init__()
        self.position_emb = BatchIndexedSinusoid(cfg.hidden)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.layers))
        self.last_ln = nn.LayerNorm(cfg.hidden)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        x = self.position_emb(x)
        for layer in self.layers:
            x = layer(x, padding)
        return self.last_ln(x)


class ReferenceEncoder(nn.Module):
    def __init__(self, cfg: ReferenceEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.in_linear = nn.Linear(cfg.in_dim, cfg.hidden)
        self.transformer_encoder = TransformerStack(cfg)
        self.query_embs = nn.Embedding(cfg.num_queries, cfg.hidden)
        self.query_attn = nn.MultiheadAttention(cfg.hidden, cfg.query_heads, batch_first=True)
        # Only when the speaker embedding's width differs from the encoder's (not in the official config).
        self.out_linear = nn.Linear(cfg.hidden, cfg.out_dim) if cfg.out_dim != cfg.hidden else None

    def forward(self, mel: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``mel`` ``[B, T, n_mel]`` (frames first), ``mask`` ``[B, T]`` bool (True = valid frame) ->
        ``(speaker queries [B, num_queries, out_dim], encoded frames [B, T, hidden])``."""
        padding = ~mask.bool()
        x = self.transformer_encoder(self.in_linear(mel), padding)
        queries = self.query_embs.weight.unsqueeze(0).expand(x.shape[0], -1, -1)
        speaker = self.query_attn(queries, x, x, key_padding_mask=padding)[0]
        if self.out_linear is not None:
            speaker = self.out_linear(speaker)
        return speaker, x

"""Amphion's "Conformer" acoustic mapper and the relative-position attention encoder it is built on.

Despite its name, Amphion's ``Conformer`` (``models/svc/transformer/conformer.py``, used by
TransformerSVC and DiffComoSVC) has no convolution module: it is Grad-TTS' text encoder, a stack of
post-norm blocks ``x = LN(x + MHA(x)); x = LN(x + FFN(x))`` with Glow-TTS' relative-position
self-attention (window 4, one table shared by all heads) and a conv FFN. VitsSVC's prior encoder
(``modules/transformer/attentions.py::Encoder``) is the same stack with two numeric differences,
both knobs of :class:`EncoderNumerics` (one class serves all three models):

=====================  ===================================  ==================================
                       Grad-TTS (``GRAD_TTS``)              VITS (``VITS``)
=====================  ===================================  ==================================
LayerNorm eps          1e-4                                 1e-5
1/sqrt(d_k) scaling    applied to the scores                applied to the query first
=====================  ===================================  ==================================

Contract (what DiffComoSVC and TransformerSVC rely on):

* :class:`ConformerConfig` / :func:`parse_conformer_config` read the ``model.transformer``
  (TransformerSVC) or ``model.comosvc`` (DiffComoSVC) section of a merged Amphion ``args.json``:
  ``input_dim`` (hidden width = the condition encoder's output), ``output_dim`` (mel bins),
  ``n_heads``, ``n_layers``, ``filter_channels``, ``dropout`` (recorded, inactive: inference only).
  Other keys of the section (the EDM settings of ``comosvc``) are ignored here.
* :class:`Conformer` ``forward(x [B, T, input_dim], x_mask [B, T, 1]) -> [B, T, output_dim]``;
  the mask may be int64 (Amphion's collator) or float, 1 = real frame. Padded frames of the output
  hold the projection's bias (the reference does not mask after the projection).
* State-dict keys: ``conformer_encoder.{attn_layers,norm_layers_1,ffn_layers,norm_layers_2}.N.*``
  and ``projection.{weight,bias}``, exactly the reference's (so ``1.conformer_encoder.*`` in a
  TransformerSVC checkpoint and ``1.encoder.conformer_encoder.*`` in a DiffComoSVC one).
* :func:`conformer_init_rule` is the :data:`models.core.random_init.Rule` for seeded tiny weights
  of the modules defined here (LayerNorm gains near 1, relative embeddings normal(0, d_k^-0.5)).

There is no dropout module: these are inference re-implementations (``eval()`` semantics).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.core.configs import ConfigError
from models.core.random_init import Draws

__all__ = [
    "GRAD_TTS",
    "VITS",
    "ChannelLayerNorm",
    "Conformer",
    "ConformerConfig",
    "ConvFFN",
    "EncoderNumerics",
    "RelativeAttentionEncoder",
    "RelativeMultiHeadAttention",
    "conformer_init_rule",
    "parse_conformer_config",
    "require_positive_int",
]

# Both references hard-code these for the Conformer (VITS reads its kernel size from the config).
CONFORMER_KERNEL_SIZE = 3
RELATIVE_WINDOW = 4
# The value the references write into masked attention scores (not -inf: a fully padded row
# stays a uniform softmax instead of NaN).
MASKED_SCORE = -1e4


@dataclass(frozen=True)
class EncoderNumerics:
    """The two places where Grad-TTS' and VITS' encoders compute differently."""

    layer_norm_eps: float
    # True: q <- q / sqrt(d_k) before both dot products (VITS); False: the sum of both dot
    # products' results is divided (Grad-TTS). Same value up to float rounding.
    scale_query_first: bool


GRAD_TTS = EncoderNumerics(layer_norm_eps=1e-4, scale_query_first=False)
VITS = EncoderNumerics(layer_norm_eps=1e-5, scale_query_first=True)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of ``[B, C, T]`` (biased variance), parameters ``gamma``/``beta``."""

    def __init__(self, channels: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.transpose(1, -1), self.gamma.shape, self.gamma, self.beta, self.eps)
        return y.transpose(1, -1)


class RelativeMultiHeadAttention(nn.Module):
    """Self-attention with Shaw-style relative positions clipped to ``window`` (Glow-TTS flavour).

    ``q, k, v, o`` are 1x1 convs with bias; heads split the channel axis. With ``i`` the query and
    ``j`` the key position and ``r = j - i`` (``|r| <= window``, nothing beyond):
    ``score[i, j] = (q_i . k_j + q_i . rel_k[r]) / sqrt(d_k)`` and
    ``out_i = sum_j p[i, j] v_j + sum_j p[i, j] rel_v[r]``. The tables ``emb_rel_k`` / ``emb_rel_v``
    (``[1, 2*window+1, d_k]``) are shared by all heads.

    The banded terms are computed on the ``2*window+1`` diagonals only (a gather), not on a
    ``T x (2T-1)`` padded table: same sums, fewer operations.
    """

    def __init__(self, channels: int, n_heads: int, window: int, scale_query_first: bool) -> None:
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels ({channels}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.head_dim = channels // n_heads
        self.window = window
        self.scale_query_first = scale_query_first
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        std = self.head_dim**-0.5
        self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window + 1, self.head_dim) * std)
        self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window + 1, self.head_dim) * std)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` -> ``[B, H, T, d_k]`` (head h owns channels ``h*d_k .. (h+1)*d_k - 1``)."""
        b, _, t = x.shape
        return x.view(b, self.n_heads, self.head_dim, t).transpose(2, 3)

    def _band_indices(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``offset[i, j] = j - i + window`` clamped into the table, and whether it is in the window."""
        pos = torch.arange(length, device=device)
        rel = pos.view(1, -1) - pos.view(-1, 1)
        inside = rel.abs() <= self.window
        return (rel + self.window).clamp(0, 2 * self.window), inside

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """``x [B, C, T]``, ``attn_mask [B, 1, T, T]`` (0 = masked) -> ``[B, C, T]``."""
        b, c, t = x.shape
        q, k, v = self._heads(self.conv_q(x)), self._heads(self.conv_k(x)), self._heads(self.conv_v(x))
        scale = 1.0 / math.sqrt(self.head_dim)
        if self.scale_query_first:
            q = q * scale
        band_k = torch.matmul(q, self.emb_rel_k.transpose(1, 2).unsqueeze(0))  # [B, H, T, 2w+1]
        offset, inside = self._band_indices(t, x.device)
        rel_scores = band_k.gather(-1, offset.expand(b, self.n_heads, t, t))
        rel_scores = torch.where(inside, rel_scores, rel_scores.new_zeros(()))
        scores = torch.matmul(q, k.transpose(-2, -1))
        if self.scale_query_first:
            scores = scores + rel_scores
        else:
            scores = scores / math.sqrt(self.head_dim) + rel_scores / math.sqrt(self.head_dim)
        scores = scores.masked_fill(attn_mask == 0, MASKED_SCORE)
        p = torch.softmax(scores, dim=-1)
        out = torch.matmul(p, v)
        # Relative values: for each query, the attention weights of keys at offsets -w..w.
        pos = torch.arange(t, device=x.device)
        key_at = pos.view(-1, 1) + torch.arange(-self.window, self.window + 1, device=x.device).view(1, -1)
        valid = (key_at >= 0) & (key_at < t)  # [T, 2w+1]
        p_band = p.gather(-1, key_at.clamp(0, t - 1).expand(b, self.n_heads, t, 2 * self.window + 1))
        p_band = torch.where(valid, p_band, p_band.new_zeros(()))
        out = out + torch.matmul(p_band, self.emb_rel_v.unsqueeze(0))
        out = out.transpose(2, 3).reshape(b, c, t)
        return self.conv_o(out)


class ConvFFN(nn.Module):
    """``conv_2(relu(conv_1(x * m)) * m) * m`` with 'same' padding (left ``(k-1)//2``, right ``k//2``)."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.padding = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(F.pad(x * mask, self.padding)))
        return self.conv_2(F.pad(x * mask, self.padding)) * mask


class RelativeAttentionEncoder(nn.Module):
    """The post-norm stack: per layer ``x = LN1(x + MHA(x)); x = LN2(x + FFN(x))``, masked.

    ``forward(x [B, C, T], mask [B, 1, T]) -> [B, C, T]`` (zero on padded frames). The input is
    masked before every layer (Grad-TTS) rather than once (VITS): the real frames' values are the
    same either way, because masked keys get exactly zero weight and the FFN masks its inputs.
    """

    def __init__(
        self,
        channels: int,
        filter_channels: int,
        n_heads: int,
        n_layers: int,
        kernel_size: int,
        numerics: EncoderNumerics,
        window: int = RELATIVE_WINDOW,
    ) -> None:
        super().__init__()
        self.attn_layers = nn.ModuleList(
            RelativeMultiHeadAttention(channels, n_heads, window, numerics.scale_query_first) for _ in range(n_layers)
        )
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(channels, numerics.layer_norm_eps) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(ConvFFN(channels, filter_channels, kernel_size) for _ in range(n_layers))
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(channels, numerics.layer_norm_eps) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)  # [B, 1, T, T]: both positions real
        for attn, norm_1, ffn, norm_2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = x * mask
            x = norm_1(x + attn(x, attn_mask))
            x = norm_2(x + ffn(x, mask))
        return x * mask


# ---------------------------------------------------------------------------------------------
# The Conformer acoustic mapper (TransformerSVC, DiffComoSVC)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConformerConfig:
    input_dim: int
    output_dim: int
    n_heads: int
    n_layers: int
    filter_channels: int
    dropout: float = 0.1  # the recipes' value; inactive at inference


def require_positive_int(section: Mapping[str, Any], key: str, where: str) -> int:
    """``section[key]`` as a positive integer (JSON may write it as 384.0); ConfigError naming it otherwise."""
    if section.get(key) is None:
        raise ConfigError(f"{where}: missing required key {key!r}")
    value = section[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 1:
        raise ConfigError(f"{where}.{key}: expected a positive integer, got {value!r}")
    return int(value)


def parse_conformer_config(section: Mapping[str, Any], where: str = "model.transformer") -> ConformerConfig:
    """The Conformer's sizes from ``model.transformer`` or ``model.comosvc`` of a merged args.json."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(section).__name__}")
    cfg = ConformerConfig(
        input_dim=require_positive_int(section, "input_dim", where),
        output_dim=require_positive_int(section, "output_dim", where),
        n_heads=require_positive_int(section, "n_heads", where),
        n_layers=require_positive_int(section, "n_layers", where),
        filter_channels=require_positive_int(section, "filter_channels", where),
        dropout=float(section.get("dropout", ConformerConfig.dropout)),
    )
    if cfg.input_dim % cfg.n_heads:
        raise ConfigError(f"{where}: input_dim {cfg.input_dim} is not divisible by n_heads {cfg.n_heads}")
    return cfg


class Conformer(nn.Module):
    """Grad-TTS encoder + 1x1 projection: ``[B, T, input_dim]`` -> ``[B, T, output_dim]`` (see module doc)."""

    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        self.config = config
        self.conformer_encoder = RelativeAttentionEncoder(
            config.input_dim, config.filter_channels, config.n_heads, config.n_layers,
            CONFORMER_KERNEL_SIZE, GRAD_TTS,
        )
        self.projection = nn.Conv1d(config.input_dim, config.output_dim, 1)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.config.input_dim:
            raise ValueError(f"x must be [B, T, {self.config.input_dim}], got {tuple(x.shape)}")
        if x_mask.shape != (*x.shape[:2], 1):
            raise ValueError(f"x_mask must be [B, T, 1] = {(*x.shape[:2], 1)}, got {tuple(x_mask.shape)}")
        mask = x_mask.transpose(1, 2).to(x.dtype)
        h = self.conformer_encoder(x.transpose(1, 2), mask)
        return self.projection(h).transpose(1, 2)


def conformer_init_rule(module: nn.Module, draws: Draws) -> bool:
    """Seeded tiny weights for this file's modules (a ``models.core.random_init`` Rule): LayerNorm
    gains normal(1, 0.1) and biases normal(0, 0.1) like ``nn.LayerNorm``'s common rule; relative
    embeddings normal(0, d_k^-0.5) as the reference draws them, then the convs by the common rule."""
    if isinstance(module, ChannelLayerNorm):
        draws.normal_(module.gamma, 1.0, 0.1)
        draws.normal_(module.beta, 0.0, 0.1)
        return True
    if isinstance(module, RelativeMultiHeadAttention):
        draws.normal_(module.emb_rel_k, 0.0, module.head_dim**-0.5)
        draws.normal_(module.emb_rel_v, 0.0, module.head_dim**-0.5)
        return False  # its convs are visited next and get the common treatment
    return False

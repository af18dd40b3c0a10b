"""DiffLlama: the bidirectional Llama-style transformer whose RMSNorm gains come from a time embedding
(Amphion's ``llama_nar.py``), used by MaskGCT's T2S / S2A and the Vevo / Vevo1.5 flow-matching models.

:class:`DiffLlama` adds a condition frame by frame, :class:`DiffLlamaPrefix` prepends it; parameter
names equal the official checkpoints'. :func:`load_state_dict_strict` loads such a checkpoint
(:class:`CheckpointKeyError` names the offending keys), :func:`build_or_load` builds a model seeded or
from a state dict. The arithmetic: ``models/blocks/README.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
import torch.nn as nn

from models.core.checkpoints import load_exact
import torch.nn.functional as F

__all__ = [
    "AdaptiveRMSNorm",
    "CheckpointKeyError",
    "DiffLlama",
    "DiffLlamaAttention",
    "DiffLlamaLayer",
    "DiffLlamaMLP",
    "DiffLlamaPrefix",
    "load_state_dict_strict",
    "rope_tables",
    "timestep_features",
]

ROPE_THETA = 10000.0
RMS_EPS = 1e-6
FFN_MULT = 4


# ---------------------------------------------------------------------------------------------
# Small pieces
# ---------------------------------------------------------------------------------------------


def timestep_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features (B, dim) of diffusion times ``t`` (B,), used unscaled: [sin | cos]."""
    if dim % 2 or dim < 4:
        raise ValueError(f"timestep_features needs an even dim >= 4, got {dim}")
    half = dim // 2
    step = math.log(10000.0) / (half - 1)
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * -step)
    angles = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def rope_tables(length: int, head_dim: int, *, offset: int = 0, theta: float = ROPE_THETA,
                device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables (length, head_dim) in float32 for positions offset .. offset+length-1.

    Half-split layout: column j and column j + head_dim/2 share the frequency ``theta^(-2j/head_dim)``.
    """
    exponents = torch.arange(0, head_dim, 2, device=device, dtype=torch.int64).to(torch.float32) / head_dim
    inv_freq = 1.0 / (theta ** exponents)
    positions = torch.arange(offset, offset + length, device=device, dtype=torch.int64).to(torch.float32)
    angles = positions[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos + _rotate_half(x) * sin


def _mlp(hidden: int) -> nn.Sequential:
    # Keys "0" and "2" (Linear, SiLU, Linear), as in the checkpoints.
    return nn.Sequential(nn.Linear(hidden, hidden * FFN_MULT), nn.SiLU(), nn.Linear(hidden * FFN_MULT, hidden))


class AdaptiveRMSNorm(nn.Module):
    """RMSNorm whose gain is a linear function of the condition: ``norm(x) * to_weight(c)``."""

    def __init__(self, hidden_size: int, dim_cond: int | None = None, eps: float = RMS_EPS) -> None:
        super().__init__()
        self.to_weight = nn.Linear(dim_cond or hidden_size, hidden_size)
        self.eps = eps
        with torch.no_grad():  # identity gain at init, as the reference
            self.to_weight.weight.zero_()
            self.to_weight.bias.fill_(1.0)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        mean_sq = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        normed = x * torch.rsqrt(mean_sq + self.eps)
        gain = self.to_weight(cond)
        if gain.dim() == 2:  # one gain per item, broadcast over time
            gain = gain.unsqueeze(1)
        return (gain * normed).to(dtype)


class DiffLlamaAttention(nn.Module):
    """Bidirectional multi-head self-attention with RoPE (q/k/v/o without bias), via SDPA."""

    def __init__(self, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        if self.head_dim % 2:
            raise ValueError(f"RoPE needs an even head dim, got {self.head_dim}")
        self.q_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.k_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v_proj = nn.Linear(hidden_size, hidden_size, bias=False)
        self.o_proj = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                attn_bias: torch.Tensor | None) -> torch.Tensor:
        b, n, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

        q = _apply_rope(heads(self.q_proj(x)), cos, sin).to(x.dtype)
        k = _apply_rope(heads(self.k_proj(x)), cos, sin).to(x.dtype)
        v = heads(self.v_proj(x))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1))


class DiffLlamaMLP(nn.Module):
    """SwiGLU feed-forward ``down(silu(gate(x)) * up(x))`` without biases."""

    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DiffLlamaLayer(nn.Module):
    """Pre-norm transformer layer with both norms conditioned on the time embedding."""

    def __init__(self, hidden_size: int, num_heads: int) -> None:
        super().__init__()
        self.self_attn = DiffLlamaAttention(hidden_size, num_heads)
        self.mlp = DiffLlamaMLP(hidden_size, hidden_size * FFN_MULT)
        self.input_layernorm = AdaptiveRMSNorm(hidden_size)
        self.post_attention_layernorm = AdaptiveRMSNorm(hidden_size)

    def forward(self, x: torch.Tensor, c: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                attn_bias: torch.Tensor | None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x, c), cos, sin, attn_bias)
        return x + self.mlp(self.post_attention_layernorm(x, c))


# ---------------------------------------------------------------------------------------------
# The backbones
# ---------------------------------------------------------------------------------------------


class _DiffLlamaBase(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, num_layers: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.layers = nn.ModuleList(DiffLlamaLayer(hidden_size, num_heads) for _ in range(num_layers))
        self.norm = AdaptiveRMSNorm(hidden_size)
        self.diff_step_mlp = _mlp(hidden_size)
        self.cond_mlp = _mlp(hidden_size)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def time_embedding(self, t: torch.Tensor | float, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``diff_step_mlp(sinusoid(t))`` (B, H); a scalar ``t`` is used for every item."""
        t = torch.as_tensor(t, dtype=torch.float32, device=device)
        if t.dim() == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"t must be a scalar or have shape ({batch},), got {tuple(t.shape)}")
        return self.diff_step_mlp(timestep_features(t, self.hidden_size).to(dtype))

    def _run(self, h: torch.Tensor, c: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """The layer stack and the final norm on already-conditioned inputs ``h`` (B, L, H)."""
        length = h.shape[1]
        cos, sin = rope_tables(length, self.head_dim, device=h.device)
        attn_bias = None
        if key_mask is not None:
            if key_mask.shape != h.shape[:2]:
                raise ValueError(f"mask shape {tuple(key_mask.shape)} does not match the sequence {tuple(h.shape[:2])}")
            keep = key_mask.to(torch.bool)[:, None, None, :]
            if not bool(keep.all()):
                # Additive bias as the reference: finfo.min on padded keys, for every query.
                attn_bias = torch.zeros(keep.shape, dtype=h.dtype, device=h.device)
                attn_bias = attn_bias.masked_fill(~keep, torch.finfo(h.dtype).min)
        for layer in self.layers:
            h = layer(h, c, cos, sin, attn_bias)
        return self.norm(h, c)


class DiffLlama(_DiffLlamaBase):
    """Backbone with a frame-wise condition added to the input: ``x + cond_mlp(cond)``.

    ``forward(x, t, cond, x_mask=None)``: ``x`` and ``cond`` (B, L, H); ``t`` (B,) or a scalar;
    ``x_mask`` (B, L), 1 = keep, 0 = padding (None: no padding). Returns (B, L, H).
    RoPE positions are 0 .. L-1.
    """

    #: Empty leftovers of the reference's dummy LlamaConfig that checkpoints may hold.
    IGNORED_EMPTY_KEYS: tuple[str, ...] = ("embed_tokens.weight",)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, cond: torch.Tensor,
                x_mask: torch.Tensor | None = None) -> torch.Tensor:
        c = self.time_embedding(t, x.shape[0], x.device, x.dtype)
        return self._run(x + self.cond_mlp(cond), c, x_mask)


class DiffLlamaPrefix(_DiffLlamaBase):
    """Backbone whose condition is a prefix: ``[cond_mlp(prefix) | x]``, prefix positions dropped.

    ``forward(x, t, x_mask=None, prefix=None, prefix_mask=None)``: ``x`` (B, L, H); ``prefix``
    (B, Np, H) *before* ``cond_mlp`` (None or Np = 0: no prefix, positions start at 0 at x);
    masks 1 = keep, 0 = padding (None: no padding). Returns (B, L, H).
    """

    IGNORED_EMPTY_KEYS: tuple[str, ...] = ("embed_tokens.weight",)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, x_mask: torch.Tensor | None = None,
                prefix: torch.Tensor | None = None, prefix_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = x.shape
        c = self.time_embedding(t, b, x.device, x.dtype)
        n_prefix = 0 if prefix is None else prefix.shape[1]
        if n_prefix == 0:
            return self._run(x, c, x_mask)
        h = torch.cat([self.cond_mlp(prefix), x], dim=1)
        mask = None
        if x_mask is not None or prefix_mask is not None:
            pm = prefix_mask if prefix_mask is not None else torch.ones(b, n_prefix, device=x.device)
            xm = x_mask if x_mask is not None else torch.ones(b, n, device=x.device)
            mask = torch.cat([pm.to(torch.bool), xm.to(torch.bool)], dim=1)
        return self._run(h, c, mask)[:, n_prefix:]


# ---------------------------------------------------------------------------------------------
# Strict checkpoint loading
# ---------------------------------------------------------------------------------------------


class CheckpointKeyError(RuntimeError):
    """A state dict that does not fit the model built from its configuration."""


def _ignored_empty(model: nn.Module) -> set[str]:
    """Full key names of empty leftovers that sub-modules declare (``IGNORED_EMPTY_KEYS``)."""
    out = set()
    for name, module in model.named_modules():
        for key in getattr(module, "IGNORED_EMPTY_KEYS", ()):
            out.add(f"{name}.{key}" if name else key)
    return out


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint",
                           *, ignore_empty: Iterable[str] = (), assign: bool = False) -> None:
    """Load ``state_dict`` into ``model`` requiring exactly its keys and shapes.

    Empty tensors under the names a sub-module lists in ``IGNORED_EMPTY_KEYS`` (or given in
    ``ignore_empty``) are dropped first; a non-empty tensor under such a name is an unexpected key.
    Raises :class:`CheckpointKeyError` naming the missing, unexpected and mis-shaped keys.
    ``assign=True`` makes the model's parameters the given tensors (for models built on ``meta``).
    """
    ignored = _ignored_empty(model) | set(ignore_empty)
    sd = {k: v for k, v in state_dict.items() if not (k in ignored and v.numel() == 0)}
    load_exact(model, sd, source, error=CheckpointKeyError, assign=assign)


def build_or_load(factory, state_dict: dict | None, *, source: str, seed: int, device, dtype) -> nn.Module:
    """`factory()` in eval mode on `device`/`dtype`: with `state_dict` loaded strictly (built on the
    meta device first, so the weights are never held twice), else with seeded random weights (the
    tiny / test profile; the global RNG is left as it was)."""
    if state_dict is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = factory()
    else:
        with torch.device("meta"):
            model = factory()
        load_state_dict_strict(model, state_dict, source, assign=True)
    return model.to(device=device, dtype=dtype).eval()

"""The denoiser of Amphion's TTA model: the LDM ("openaimodel") UNet with spatial transformers that
Amphion's ``AudioLDM`` wraps as ``self.unet``, written here in plain PyTorch.

Module names are the checkpoint's (``unet.input_blocks.N.M``, ``unet.middle_block.{0,1,2}``,
``unet.output_blocks.N.M``, ``unet.time_embed.{0,2}``, ``unet.out.{0,2}``), so the official state
dict loads strictly without any key mapping. Why not diffusers' ``UNet2DConditionModel``: on the
official 5 x 39 latent the up path must upsample by 2, convolve, and only then crop to the skip's
size; diffusers interpolates straight to the skip's size before the conv, which changes the border
row and column (``models/audioldm/README.md``).

``AudioLDMUNet(cfg)(x [B, C, H, W], timesteps [B], context [B, L, context_dim]) -> eps [B, C, H, W]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.audioldm.configs import UNetConfig

__all__ = ["AudioLDMUNet", "LatentUNet", "timestep_embedding"]

#: GroupNorm eps of the ResBlocks / output head (torch's default) and of the spatial transformers.
RESBLOCK_NORM_EPS = 1e-5
TRANSFORMER_NORM_EPS = 1e-6
NORM_GROUPS = 32


class Float32GroupNorm(nn.GroupNorm):
    """GroupNorm(32) computed in float32 and cast back (the reference's ``GroupNorm32``), so half
    precision UNets normalise like the float32 one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps).to(x.dtype)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[B, dim]`` in float32: frequencies exp(-ln(max_period) * i / half) for
    i < half = dim // 2, the cosines first, then the sines (a zero column when ``dim`` is odd)."""
    half = dim // 2
    exponents = torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    freqs = torch.exp(-math.log(max_period) * exponents)
    angles = timesteps.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


# ---------------------------------------------------------------------------------------------
# building blocks (attribute names = checkpoint names)
# ---------------------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """GN -> SiLU -> conv3x3, plus the projected timestep embedding, then GN -> SiLU -> (dropout)
    -> conv3x3; the input joins through identity or a 1x1 conv when the width changes."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(
            Float32GroupNorm(NORM_GROUPS, channels, eps=RESBLOCK_NORM_EPS),
            nn.SiLU(),
            nn.Conv2d(channels, out_channels, 3, padding=1),
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            Float32GroupNorm(NORM_GROUPS, out_channels, eps=RESBLOCK_NORM_EPS),
            nn.SiLU(),
            nn.Identity(),  # the reference's dropout slot (p = 0 at inference)
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip_connection = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Attention(nn.Module):
    """Multi-head attention with bias-free q/k/v projections and a biased output projection
    (``to_out.0``); scale dim_head ** -0.5. ``context`` None: self-attention."""

    def __init__(self, query_dim: int, heads: int, dim_head: int, context_dim: int | None = None) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Identity())  # (Linear, dropout)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        source = x if context is None else context
        q, k, v = self._split(self.to_q(x)), self._split(self.to_k(source)), self._split(self.to_v(source))
        out = F.scaled_dot_product_attention(q, k, v)
        b, _, n, _ = out.shape
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class GEGLU(nn.Module):
    """``value * gelu(gate)`` with value and gate the two halves of one projection (``proj``)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, 2 * dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, mult * dim), nn.Identity(), nn.Linear(mult * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention on the text, gated feed-forward; each residual."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int) -> None:
        super().__init__()
        self.attn1 = Attention(dim, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = Attention(dim, heads, dim_head, context_dim=context_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """GN (eps 1e-6) -> 1x1 conv -> tokens (h*w) -> transformer blocks -> 1x1 conv, plus the input."""

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int, context_dim: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.norm = Float32GroupNorm(NORM_GROUPS, channels, eps=TRANSFORMER_NORM_EPS)
        self.proj_in = nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(inner, heads, dim_head, context_dim) for _ in range(depth)
        )
        self.proj_out = nn.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        tokens = self.proj_in(self.norm(x))
        tokens = tokens.flatten(2).transpose(1, 2)
        for block in self.transformer_blocks:
            tokens = block(tokens, context)
        tokens = tokens.transpose(1, 2).reshape(b, -1, h, w)
        return x + self.proj_out(tokens)


class Downsample(nn.Module):
    """Conv3x3, stride 2, padding 1 (``op``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest x2, then conv3x3 (``conv``), on the whole doubled map (any crop comes later)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Stage(nn.ModuleList):
    """One entry of ``input_blocks`` / ``middle_block`` / ``output_blocks``: its layers in order,
    ResBlocks fed the timestep embedding, spatial transformers the text."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


# ---------------------------------------------------------------------------------------------
# the UNet
# ---------------------------------------------------------------------------------------------


class LatentUNet(nn.Module):
    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mc, emb_dim = cfg.model_channels, cfg.time_embed_dim

        def transformer(ch: int) -> SpatialTransformer:
            return SpatialTransformer(ch, cfg.num_heads, ch // cfg.num_heads, cfg.transformer_depth, cfg.context_dim)

        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        # down path: conv_in, per level num_res_blocks x (ResBlock [+ transformer]), Downsample between levels
        self.input_blocks = nn.ModuleList([Stage([nn.Conv2d(cfg.in_channels, mc, 3, padding=1)])])
        skip_channels = [mc]
        ch, ds = mc, 1
        last = len(cfg.channel_mult) - 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb_dim, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(transformer(ch))
                self.input_blocks.append(Stage(layers))
                skip_channels.append(ch)
            if level != last:
                self.input_blocks.append(Stage([Downsample(ch)]))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = Stage([ResBlock(ch, emb_dim), transformer(ch), ResBlock(ch, emb_dim)])

        # up path: per level num_res_blocks + 1 x (concat skip -> ResBlock [+ transformer]), Upsample between levels
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(ch + skip_channels.pop(), emb_dim, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(transformer(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(Stage(layers))

        self.out = nn.Sequential(
            Float32GroupNorm(NORM_GROUPS, ch, eps=RESBLOCK_NORM_EPS), nn.SiLU(), nn.Conv2d(mc, cfg.out_channels, 3, padding=1)
        )

    @property
    def dtype(self) -> torch.dtype:
        return self.out[2].weight.dtype

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        dtype = self.dtype
        emb = self.time_embed(timestep_embedding(timesteps, self.cfg.model_channels).to(dtype))
        context = context.to(dtype)
        h = x.to(dtype)
        skips = []
        for stage in self.input_blocks:
            h = stage(h, emb, context)
            skips.append(h)
        h = self.middle_block(h, emb, context)
        for stage in self.output_blocks:
            skip = skips.pop()
            # Odd sizes: the previous level's Upsample doubled a map that the Downsample had rounded
            # up; cut the extra row / column at the end so that it fits the skip.
            h = h[:, :, : skip.shape[-2], : skip.shape[-1]]
            h = stage(torch.cat([h, skip], dim=1), emb, context)
        return self.out(h).to(x.dtype)


class AudioLDMUNet(nn.Module):
    """Amphion's ``AudioLDM``: the UNet under ``unet`` (the checkpoint's ``unet.`` prefix)."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.unet = LatentUNet(cfg)

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.unet(x, timesteps, context)

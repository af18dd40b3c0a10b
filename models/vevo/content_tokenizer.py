"""Vevo's vq32 content tokenizer (``VevoRepCodec``) and the duplicate collapse of its tokens.

:meth:`VevoRepCodec.tokenize` maps raw HuBERT-large layer-18 features (50 Hz, not normalised) to
nearest-code ids; :func:`collapse_repeats` collapses consecutive duplicates. ``build_content_tokenizer``
makes a tiny seeded one, ``load_content_tokenizer`` reads the official pickle
(``amphion/Vevo`` ``tokenizer/vq32/hubert_large_l18_c32.pkl``) without running code from it, or a
``.safetensors`` file with the same keys. The network, the distance and how the pickle is read:
``models/vevo/README.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.core.checkpoints import CheckpointError, load_exact, load_state_dict_file
from models.core.safe_pickle import torch_load_inert
from models.core.configs import read_config
from models.core.random_init import init_random_weights
from models.vevo.configs import (
    ContentTokenizerConfig,
    official_content_tokenizer_config,
    parse_content_tokenizer_config,
)

__all__ = [
    "CONTENT_TOKENIZER_FILE",
    "ContentTokens",
    "VevoRepCodec",
    "build_content_tokenizer",
    "collapse_repeats",
    "load_content_tokenizer",
    "read_content_tokenizer_state",
    "tiny_content_tokenizer_config",
]

CONTENT_TOKENIZER_FILE = "tokenizer/vq32/hubert_large_l18_c32.pkl"


def tiny_content_tokenizer_config(feature_dim: int = 32) -> ContentTokenizerConfig:
    """The official structure (2 stride-1 blocks, 32 codes) at ``feature_dim`` channels."""
    return ContentTokenizerConfig(
        input_channels=feature_dim, output_channels=feature_dim, encode_channels=feature_dim,
        decode_channels=feature_dim, code_dim=feature_dim, codebook_num=1, codebook_size=32,
    )


# ---------------------------------------------------------------------------------------------
# Layers (names follow the reference so the state-dict keys match)
# ---------------------------------------------------------------------------------------------


class _SameConv(nn.Module):
    """``Conv1d`` with the reference's default padding ``(k - 1) // 2 * dilation``, kept under ``.conv``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, dilation: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_ch, out_ch, kernel_size, padding=(kernel_size - 1) // 2 * dilation,
                              dilation=dilation, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _ResidualUnit(nn.Module):
    """``x + conv2(ELU(conv1(ELU(x))))``; both convs without bias (the reference's default)."""

    def __init__(self, channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.activation = nn.ELU()
        self.conv1 = _SameConv(channels, channels, kernel_size, dilation=dilation, bias=False)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.activation(self.conv1(self.activation(x))))


class _EncoderBlock(nn.Module):
    """Residual units, then a biased k3 conv (the reference's stride-1 case)."""

    def __init__(self, in_ch: int, out_ch: int, dilations: tuple[int, ...], unit_kernel: int, bias: bool) -> None:
        super().__init__()
        self.res_units = nn.ModuleList(_ResidualUnit(in_ch, unit_kernel, d) for d in dilations)
        self.conv = _SameConv(in_ch, out_ch, 3, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.res_units:
            x = unit(x)
        return self.conv(x)


class _DecoderBlock(nn.Module):
    """A biased k3 conv (the reference's stride-1 case), then residual units."""

    def __init__(self, in_ch: int, out_ch: int, dilations: tuple[int, ...], unit_kernel: int, bias: bool) -> None:
        super().__init__()
        self.conv = _SameConv(in_ch, out_ch, 3, bias=bias)
        self.res_units = nn.ModuleList(_ResidualUnit(out_ch, unit_kernel, d) for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        for unit in self.res_units:
            x = unit(x)
        return x


class _Encoder(nn.Module):
    def __init__(self, c: ContentTokenizerConfig) -> None:
        super().__init__()
        self.conv = _SameConv(c.input_channels, c.encode_channels, c.enc_kernel_size, bias=False)
        blocks, in_ch = [], c.encode_channels
        for ratio in c.enc_ratios:
            out_ch = int(c.encode_channels * ratio)
            blocks.append(_EncoderBlock(in_ch, out_ch, c.enc_block_dilations, c.enc_block_kernel_size, c.bias))
            in_ch = out_ch
        self.conv_blocks = nn.ModuleList(blocks)
        self.out_channels = in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        for block in self.conv_blocks:
            x = block(x)
        return x


class _Decoder(nn.Module):
    def __init__(self, c: ContentTokenizerConfig) -> None:
        super().__init__()
        widths = [int(c.decode_channels * r) for r in c.dec_ratios]
        self.conv1 = _SameConv(c.code_dim, widths[0], c.dec_kernel_size, bias=False)
        outs = widths[1:] + [c.decode_channels]
        self.conv_blocks = nn.ModuleList(
            _DecoderBlock(w, o, c.dec_block_dilations, c.dec_block_kernel_size, c.bias) for w, o in zip(widths, outs)
        )
        self.conv2 = _SameConv(outs[-1], c.output_channels, c.dec_kernel_size, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.conv1(z)
        for block in self.conv_blocks:
            x = block(x)
        return self.conv2(x)


class _Projector(nn.Module):
    def __init__(self, in_ch: int, code_dim: int) -> None:
        super().__init__()
        self.project = _SameConv(in_ch, code_dim, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(x)


class _EMACodebook(nn.Module):
    """One EMA-VQ stage. ``embed`` is ``[dim, K]``; ``cluster_size`` / ``embed_avg`` are training statistics,
    kept only because the checkpoint stores them."""

    def __init__(self, dim: int, codebook_size: int) -> None:
        super().__init__()
        self.register_buffer("embed", torch.randn(dim, codebook_size))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed_avg", self.embed.clone())

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[..., dim]`` -> indices ``[...]`` of the nearest columns (squared L2, written out as the
        reference does so near-ties resolve alike)."""
        flat = x.reshape(-1, self.embed.shape[0])
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed + self.embed.pow(2).sum(0, keepdim=True)
        return (-dist).max(1).indices.view(x.shape[:-1])

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.embed.t())


class _ResidualCodebook(nn.Module):
    def __init__(self, dim: int, num_quantizers: int, codebook_size: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_EMACodebook(dim, codebook_size) for _ in range(num_quantizers))

    def forward_index(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, T, dim]`` -> codes ``[num_quantizers, B, T]`` (residual over the stages)."""
        residual, codes = x, []
        for layer in self.layers:
            idx = layer.nearest(residual)
            # The reference's straight-through form, kept for its rounding of the residual.
            residual = residual - (residual + (layer.lookup(idx) - residual))
            codes.append(idx)
        return torch.stack(codes)


class _Quantizer(nn.Module):
    def __init__(self, code_dim: int, codebook_num: int, codebook_size: int) -> None:
        super().__init__()
        self.codebook = _ResidualCodebook(code_dim, codebook_num, codebook_size)


# ---------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContentTokens:
    """Content tokens of a batch. ``codes`` ``[B, T]`` (50 Hz, padded frames included, as the reference
    computes them) with ``codes_mask`` (1 = valid); ``reduced`` ``[B, T']`` after the duplicate collapse,
    right-padded with 0, with ``reduced_mask`` (1 = valid)."""

    codes: torch.Tensor
    codes_mask: torch.Tensor
    reduced: torch.Tensor
    reduced_mask: torch.Tensor

    @property
    def reduced_lengths(self) -> list[int]:
        return [int(n) for n in self.reduced_mask.sum(1)]


def collapse_repeats(tokens: torch.Tensor, n_gram: int = 1) -> torch.Tensor:
    """The reference's ``duration_reduction_func`` on one sequence ``[T]``.

    With ``n_gram = 1``: keep the first token and every token that differs from the one before it
    (``[3,3,5,5,5,3,7,7] -> [3,5,3,7]``). For ``n_gram > 1`` the windows of ``n_gram`` tokens are compared
    element-wise, and a window is kept only when **every** element differs from the previous window
    (the reference's ``all(!=)``), contributing its last token. A sequence of at most ``n_gram`` tokens is
    returned unchanged (the reference fails on shorter ones)."""
    if tokens.dim() != 1:
        raise ValueError(f"expected one token sequence [T], got {tuple(tokens.shape)}")
    if n_gram < 1:
        raise ValueError(f"n_gram must be >= 1, got {n_gram}")
    if tokens.numel() <= n_gram:
        return tokens.clone()
    windows = tokens.unfold(0, n_gram, 1)
    keep = (windows[1:] != windows[:-1]).all(dim=1)
    return torch.cat((windows[0], windows[1:, -1][keep]))


class VevoRepCodec(nn.Module):
    """The vq32 content tokenizer: raw HuBERT features ``[B, T, input_channels]`` -> codes."""

    def __init__(self, config: ContentTokenizerConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = _Encoder(config)
        self.decoder = _Decoder(config)
        self.projector = _Projector(self.encoder.out_channels, config.code_dim)
        self.quantizer = _Quantizer(config.code_dim, config.codebook_num, config.codebook_size)

    @property
    def feature_dim(self) -> int:
        return self.config.input_channels

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def project(self, feats: torch.Tensor) -> torch.Tensor:
        """Features ``[B, T, D]`` -> the pre-VQ latent ``z`` ``[B, code_dim, T]`` (encoder + projector)."""
        if feats.dim() != 3 or feats.shape[-1] != self.feature_dim:
            raise ValueError(f"expected features [B, T, {self.feature_dim}], got {tuple(feats.shape)}")
        return self.projector(self.encoder(feats.transpose(1, 2)))

    def quantize(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``[B, T, D]`` -> ``(codes [B, T] int64, z [B, T, code_dim])`` (first quantizer's codes)."""
        z = self.project(feats).transpose(1, 2)
        return self.quantizer.codebook.forward_index(z)[0], z

    @torch.inference_mode()
    def tokenize(self, feats: torch.Tensor, feat_lengths: torch.Tensor | None = None, n_gram: int = 1) -> ContentTokens:
        """Features ``[B, T, D]`` (right-padded; ``feat_lengths`` valid frames, default all) -> tokens.

        Codes are computed on the whole padded tensor (so the k3 convs see padding next to the last valid
        frames, as in the reference); each row is cut to its length before the collapse."""
        weight = self.projector.project.conv.weight
        codes, _ = self.quantize(feats.to(device=weight.device, dtype=weight.dtype))
        batch, frames = codes.shape
        lengths = self._lengths(feat_lengths, batch, frames, codes.device)
        codes_mask = (torch.arange(frames, device=codes.device)[None, :] < lengths[:, None]).int()
        rows = [collapse_repeats(codes[i, : int(lengths[i])], n_gram) for i in range(batch)]
        reduced = nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=0)
        reduced_mask = nn.utils.rnn.pad_sequence([torch.ones_like(r) for r in rows], batch_first=True)
        return ContentTokens(codes, codes_mask, reduced, reduced_mask)

    @staticmethod
    def _lengths(feat_lengths: torch.Tensor | None, batch: int, frames: int, device: torch.device) -> torch.Tensor:
        if feat_lengths is None:
            return torch.full((batch,), frames, dtype=torch.long, device=device)
        lengths = torch.as_tensor(feat_lengths, device=device).long().flatten()
        if lengths.shape != (batch,) or bool((lengths < 0).any()) or bool((lengths > frames).any()):
            raise ValueError(f"feat_lengths must be {batch} values in [0, {frames}], got {lengths.tolist()}")
        return lengths

    @torch.inference_mode()
    def reconstruct(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, T]`` (first quantizer) -> decoded features ``[B, T, output_channels]``."""
        if codes.dtype.is_floating_point or int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size:
            raise ValueError(f"codes must be integers in [0, {self.codebook_size})")
        z_q = self.quantizer.codebook.layers[0].lookup(codes).transpose(1, 2)
        return self.decoder(z_q).transpose(1, 2)


def read_content_tokenizer_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``VevoRepCodec`` state dict from the official pickle (``["model"]["repcodec"]``), a bare torch
    state dict, or a ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"content tokenizer checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return load_state_dict_file(path)
    try:
        obj = torch_load_inert(path)
    except Exception as exc:  # a corrupt or foreign file
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping) and "repcodec" in obj["model"]:
        obj = obj["model"]["repcodec"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: no VevoRepCodec state dict (expected tensors under ['model']['repcodec'])")
    return {str(k): v for k, v in obj.items()}


# ---------------------------------------------------------------------------------------------
# Building and loading
# ---------------------------------------------------------------------------------------------


def build_content_tokenizer(
    config: ContentTokenizerConfig | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    source: str = "content tokenizer state dict",
) -> VevoRepCodec:
    """``VevoRepCodec`` from ``config`` (None: tiny) and a state dict (None: seeded random weights, the
    codebook drawn from a standard normal), strictly loaded, eval mode, on ``device``."""
    with torch.random.fork_rng(devices=[]):  # construction draws random numbers: keep them seeded and local
        torch.manual_seed(seed)
        model = VevoRepCodec(tiny_content_tokenizer_config() if config is None else config)
    if state_dict is None:
        init_random_weights(model, seed)
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for layer in model.quantizer.codebook.layers:
                layer.embed.copy_(torch.randn(layer.embed.shape, generator=gen))
                layer.embed_avg.copy_(layer.embed)
    else:
        load_exact(model, state_dict, source)
    return model.eval().requires_grad_(False).to(device)


def load_content_tokenizer(
    root: str | Path,
    config: ContentTokenizerConfig | str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
) -> VevoRepCodec:
    """The vq32 tokenizer from a folder laid out like ``amphion/Vevo`` (:data:`CONTENT_TOKENIZER_FILE`) or
    from the checkpoint file itself. ``config``: parsed, a path to ``hubert_large_l18_c32.yaml``, or None
    for the official values."""
    root = Path(root)
    path = root if root.is_file() else root / CONTENT_TOKENIZER_FILE
    if not path.is_file():
        raise CheckpointError(f"{root} is not laid out like amphion/Vevo: {CONTENT_TOKENIZER_FILE} is missing")
    if config is None:
        config = official_content_tokenizer_config()
    elif not isinstance(config, ContentTokenizerConfig):
        config = parse_content_tokenizer_config(read_config(config))
    return build_content_tokenizer(config, read_content_tokenizer_state(path), device=device, source=str(path))

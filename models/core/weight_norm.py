"""Weight-normalised convolutions whose state dict matches the official checkpoints.

The official checkpoints were written by models wrapped with the old hook API
``torch.nn.utils.weight_norm`` (dim 0): they store ``<conv>.weight_g`` and ``<conv>.weight_v``.
These modules keep two plain parameters under those names and compute ``weight = g * v / ||v||``
themselves (the norm per index of dim 0, as the hook did). :meth:`WeightNormConv.fold` caches the
effective weight for inference in a non-persistent buffer, or, for float32 on CPU, prepacked in
oneDNN's layout (:func:`models.core.compute.pack_conv`: the convolution no longer reorders it on
every call); loading a state dict drops the cache, moving the module (``.to``) unpacks it.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.core.compute import PackedConv, pack_conv, packed_conv1d

__all__ = [
    "WNConv1d",
    "WNConvTranspose1d",
    "WeightNormConv",
    "fold_weight_norm",
    "norm_except_dim0",
    "weight_norm_prefixes",
]


def norm_except_dim0(v: torch.Tensor) -> torch.Tensor:
    """``||v||`` over every dim but the first, shaped to broadcast against ``v`` (weight norm's ``g``)."""
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))


class WeightNormConv(nn.Module):
    """Shared parameter handling; subclasses only say which convolution to run."""

    def __init__(self, weight_shape: tuple[int, ...], bias_size: int | None) -> None:
        super().__init__()
        v = torch.empty(weight_shape)
        # PyTorch's default conv init (kaiming-uniform, a=sqrt(5)), so an unloaded module is sane.
        nn.init.kaiming_uniform_(v, a=math.sqrt(5))
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(norm_except_dim0(v).clone())
        if bias_size is None:
            self.register_parameter("bias", None)
        else:
            bound = 1.0 / math.sqrt(max(1, v[0].numel()))
            self.bias = nn.Parameter(torch.empty(bias_size).uniform_(-bound, bound))
        self.register_buffer("_folded", None, persistent=False)
        self._packed: PackedConv | None = None   # the folded weight, packed (then _folded is None)

    @property
    def weight(self) -> torch.Tensor:
        if self._folded is not None:
            return self._folded
        if self._packed is not None:
            return self._packed.dense()
        # Same operation order as torch's weight-norm hook: v * (g / ||v||).
        return self.weight_v * (self.weight_g / norm_except_dim0(self.weight_v))

    @torch.no_grad()
    def fold(self) -> None:
        """Freeze the effective weight (inference): computed once instead of on every call, and
        packed where :func:`models.core.compute.pack_conv` applies (held once: packed or plain)."""
        self.unfold()
        folded = self.weight.detach().clone()
        self._packed = self._pack(folded)
        if self._packed is None:
            self._folded = folded

    def _pack(self, weight: torch.Tensor) -> PackedConv | None:
        """The folded weight packed for this module's convolution; None: keep it plain."""
        return None

    def unfold(self) -> None:
        self._folded = None
        self._packed = None

    @property
    def is_folded(self) -> bool:
        return self._folded is not None or self._packed is not None

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        if self._packed is not None:
            out = packed_conv1d(x, self._packed, self.bias)
            if out is not None:
                return out
        return self._plain_conv(x, self.weight)

    def _plain_conv(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv(x)

    def _apply(self, fn, recurse=True):  # noqa: ANN001
        # A packed weight is CPU float32 only: moving or casting the module takes the plain one along.
        if self._packed is not None:
            self._folded = self._packed.dense()
            self._packed = None
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        # New g/v invalidate any folded weight.
        self.unfold()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class WNConv1d(WeightNormConv):
    """``weight_norm(nn.Conv1d(...))`` with the same parameter names and numerics."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__((out_channels, in_channels, kernel_size), out_channels if bias else None)
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def _pack(self, weight: torch.Tensor) -> PackedConv | None:
        return pack_conv(weight, stride=self.stride, padding=self.padding, dilation=self.dilation)

    def _plain_conv(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        o, i, k = self.weight_v.shape
        return f"{i}, {o}, kernel_size={k}, stride={self.stride}, padding={self.padding}, dilation={self.dilation}"


class WNConvTranspose1d(WeightNormConv):
    """``weight_norm(nn.ConvTranspose1d(...))``: ``weight_v`` is ``[in, out, k]``, ``weight_g`` ``[in, 1, 1]``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0
    ) -> None:
        super().__init__((in_channels, out_channels, kernel_size), out_channels)
        self.stride, self.padding = stride, padding

    def _pack(self, weight: torch.Tensor) -> PackedConv | None:
        return pack_conv(weight, stride=self.stride, padding=self.padding, transposed=True)

    def _plain_conv(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        i, o, k = self.weight_v.shape
        return f"{i}, {o}, kernel_size={k}, stride={self.stride}, padding={self.padding}"


def fold_weight_norm(module: nn.Module) -> nn.Module:
    """Fold every weight-normalised conv inside ``module`` (call after loading weights)."""
    for m in module.modules():
        if isinstance(m, WeightNormConv):
            m.fold()
    return module


def weight_norm_prefixes(module: nn.Module) -> list[str]:
    """State-dict prefixes (``"ups.0."``...) of the weight-normalised convs, for key conversion."""
    return [f"{name}." if name else "" for name, m in module.named_modules() if isinstance(m, WeightNormConv)]

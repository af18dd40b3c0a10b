"""How the models compute, apart from what: fused elementwise kernels and prepacked convolution weights.

* :class:`FusedKernel`: one elementwise formula with two implementations, an eager one (in-place,
  bit-exact with the plain formula) and the same formula compiled by ``torch.compile`` (inductor:
  one vectorised pass instead of one pass per operator; float rounding may differ in the last bit
  of ``sin``). The compiled one is used when :func:`compile_enabled` and the tensor is large
  enough for the pass count to matter; a failed compile falls back to eager for good (logged once).
  The switch: ``AMPHION_COMPILE`` (``1`` on, ``0`` off; default :data:`COMPILE_DEFAULT`), read at
  every call, so tests and scripts may flip it. Shapes are dynamic (one compile for every length
  and channel count); :func:`warm_up` compiles every kernel once, at replica start.
* :func:`pack_conv`: a float32 CPU convolution's weight reordered once into oneDNN's blocked layout
  (what the convolution otherwise does on every call), for the codecs' and vocoders' folded
  weight-normed convolutions (:mod:`models.core.weight_norm`). :func:`packed_conv1d` runs it.

Measured effects and the switches' defaults: ``models/core/README.md`` ("Compute").
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import torch

__all__ = [
    "COMPILE_DEFAULT",
    "COMPILE_ENV",
    "FusedKernel",
    "PackedConv",
    "compile_enabled",
    "pack_conv",
    "packed_conv1d",
    "warm_up",
]

log = logging.getLogger(__name__)

COMPILE_ENV = "AMPHION_COMPILE"
#: On unless switched off: the compiled kernels are what production runs (tests switch it off).
COMPILE_DEFAULT = "1"
#: Elements below which a kernel stays eager: one pass over a small tensor costs less than the
#: compiled call's guard checks, and the tiny test models never trigger a compile.
MIN_COMPILED_NUMEL = 1 << 16


def compile_enabled() -> bool:
    """``AMPHION_COMPILE`` (``1`` / ``0``), default :data:`COMPILE_DEFAULT`."""
    value = os.environ.get(COMPILE_ENV, COMPILE_DEFAULT).strip().lower()
    if value not in ("0", "1", "true", "false", "on", "off", ""):
        raise ValueError(f"{COMPILE_ENV} must be 1 or 0, got {value!r}")
    return value in ("1", "true", "on")


class FusedKernel:
    """An elementwise function computed eagerly or compiled (see the module docstring).

    ``formula(*tensors)``: the plain expression (what is compiled); ``eager(*tensors)``: an
    implementation with the same result bit for bit (in-place steps, no temporaries).
    ``example()``: small inputs for :func:`warm_up`."""

    registry: list[FusedKernel] = []

    def __init__(self, name: str, formula: Callable, eager: Callable, example: Callable[[], tuple]) -> None:
        self.name, self.formula, self.eager, self.example = name, formula, eager, example
        self._compiled: Callable | None = None
        self._failed = False
        self._lock = threading.Lock()
        FusedKernel.registry.append(self)

    def _get_compiled(self) -> Callable | None:
        if self._failed:
            return None
        with self._lock:
            if self._compiled is None:
                self._compiled = torch.compile(self.formula, dynamic=True, fullgraph=True)
            return self._compiled

    def __call__(self, x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        if x.numel() >= MIN_COMPILED_NUMEL and not x.requires_grad and compile_enabled():
            compiled = self._get_compiled()
            if compiled is not None:
                try:
                    return compiled(x, *args)
                except Exception as exc:  # no compiler, unsupported device: eager from now on
                    self._failed = True
                    log.warning("compiled kernel %s failed, running it eagerly from now on: %s", self.name, exc)
        return self.eager(x, *args)

    def warm_up(self, device: torch.device | str = "cpu") -> None:
        """Compile now (a first request would otherwise pay for it): a call on the example inputs."""
        if not compile_enabled():
            return
        inputs = tuple(t.to(device) for t in self.example())
        with torch.inference_mode():
            self(*inputs)


def warm_up(device: torch.device | str = "cpu") -> None:
    """Compile every registered kernel (when compiling is on); cached on disk by inductor, so a
    replica that starts again loads them in seconds."""
    for kernel in list(FusedKernel.registry):
        try:
            kernel.warm_up(device)
        except Exception as exc:  # a warm-up must never keep a replica from starting
            log.warning("warming up kernel %s failed: %s", kernel.name, exc)


# ---------------------------------------------------------------------------------------------
# Prepacked convolution weights (CPU, float32)
# ---------------------------------------------------------------------------------------------


class PackedConv:
    """A conv1d weight in oneDNN's blocked layout, with the settings it was packed for. Such a tensor
    has no plain storage: :meth:`dense` gives the weight back; a deep copy packs that again."""

    def __init__(self, packed: torch.Tensor, stride: int, padding: int, dilation: int, transposed: bool) -> None:
        self.weight, self.stride, self.padding, self.dilation, self.transposed = (
            packed, stride, padding, dilation, transposed)

    def dense(self) -> torch.Tensor:
        """The weight in its conv1d layout (``[out, in, k]``, transposed: ``[in, out, k]``)."""
        w = self.weight.to_dense()
        return (w.transpose(0, 1) if self.transposed else w).squeeze(2).contiguous()

    def __deepcopy__(self, memo: dict) -> PackedConv | None:
        return pack_conv(self.dense(), stride=self.stride, padding=self.padding, dilation=self.dilation,
                         transposed=self.transposed)


def _packable(weight: torch.Tensor) -> bool:
    return (weight.device.type == "cpu" and weight.dtype == torch.float32 and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled)


def pack_conv(weight: torch.Tensor, *, stride: int = 1, padding: int = 0, dilation: int = 1,
              transposed: bool = False, example_length: int = 1024) -> PackedConv | None:
    """``weight`` (conv1d ``[out, in, k]``, or conv_transpose1d ``[in, out, k]``) packed for CPU
    float32 convolutions of ``groups == 1``; None where packing does not apply (another device
    or dtype, no oneDNN)."""
    if not _packable(weight) or weight.dim() != 3:
        return None
    w4 = weight.detach().unsqueeze(2).contiguous()
    channels = w4.shape[0] if transposed else w4.shape[1]
    size = [1, channels, 1, example_length]
    mkldnn = torch.ops.mkldnn
    try:
        if transposed:
            packed = mkldnn._reorder_convolution_transpose_weight(w4, [0, padding], [0, 0], [1, stride], [1, dilation],
                                                                 1, size)
        else:
            packed = mkldnn._reorder_convolution_weight(w4, [0, padding], [1, stride], [1, dilation], 1, size)
    except (RuntimeError, AttributeError) as exc:  # an older or oneDNN-less build
        log.debug("conv weight packing unavailable: %s", exc)
        return None
    return PackedConv(packed, stride, padding, dilation, transposed)


def packed_conv1d(x: torch.Tensor, packed: PackedConv, bias: torch.Tensor | None) -> torch.Tensor | None:
    """The convolution with a packed weight, or None when ``x`` cannot take that path (another
    device or dtype, autograd): the caller then runs its plain convolution."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 3 or torch.is_grad_enabled() and x.requires_grad:
        return None
    x4 = x.unsqueeze(2)
    mkldnn = torch.ops.mkldnn
    if packed.transposed:
        out = mkldnn._convolution_transpose_pointwise(x4, packed.weight, bias, [0, packed.padding], [0, 0],
                                                      [1, packed.stride], [1, packed.dilation], 1, "none", [], "")
    else:
        out = mkldnn._convolution_pointwise(x4, packed.weight, bias, [0, packed.padding], [1, packed.stride],
                                            [1, packed.dilation], 1, "none", [], "")
    return out.squeeze(2)


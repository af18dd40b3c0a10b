"""Reading pickled checkpoints that hold more than tensors (training bookkeeping: fairseq configs,
optimiser history) without running any of their code: :func:`torch_load_inert`.

``torch.load(weights_only=True)`` refuses such files; ``weights_only=False`` would run whatever the
pickle names. Here the unpickler rebuilds tensors and plain containers and turns every other class
the file names into an inert placeholder that stores what it is fed and does nothing.
"""

from __future__ import annotations

import io
import pickle
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

__all__ = ["torch_load_inert"]


class _Inert:
    """Stands in for any class the pickle names that is not a tensor rebuild function: it accepts and
    stores whatever the pickle feeds it and runs nothing."""

    _qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Inert":
        obj = object.__new__(cls)
        obj.__dict__["_args"] = args
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__.setdefault("_items", {})[key] = value

    def append(self, value: Any) -> None:
        self.__dict__.setdefault("_list", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("_list", []).extend(values)

    def __repr__(self) -> str:
        return f"<inert {self._qualname}>"


_TENSOR_GLOBALS = {
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("collections", "OrderedDict"),
    ("torch", "Size"),
    ("torch", "device"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _TENSOR_GLOBALS:
            if module == "collections":
                return OrderedDict
            return getattr(torch._utils, name) if module == "torch._utils" else getattr(torch, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        return type(name, (_Inert,), {"_qualname": f"{module}.{name}"})


def _restricted_pickle_module() -> types.ModuleType:
    """A ``pickle``-like module for ``torch.load(pickle_module=...)`` whose unpickler rebuilds tensors only."""
    module = types.ModuleType("restricted_pickle")
    module.Unpickler = _RestrictedUnpickler  # type: ignore[attr-defined]
    module.load = lambda f, **kw: _RestrictedUnpickler(f, **kw).load()  # type: ignore[attr-defined]
    module.loads = lambda b, **kw: _RestrictedUnpickler(io.BytesIO(b), **kw).load()  # type: ignore[attr-defined]
    return module


def torch_load_inert(path: str | Path) -> Any:
    """``torch.load`` of a checkpoint that may hold more than tensors and containers: tensors come back
    as tensors, any other object the pickle names as an inert placeholder (no pickled code runs)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # Objects beyond tensors and containers (training bookkeeping): read them as inert placeholders.
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle_module())



"""Reading state-dict files and loading them strictly.

Files are read with ``torch.load(weights_only=True)`` or safetensors (no pickled code). Loading is
strict: a missing, unexpected or mis-shaped key is a :class:`CheckpointError` (or the caller's error
class) naming the keys. Weight-normalised convs keep the official ``weight_g`` / ``weight_v`` keys;
plain ``weight`` entries (a model saved after ``remove_weight_norm``) are converted.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from models.core.weight_norm import norm_except_dim0, weight_norm_prefixes

__all__ = [
    "CheckpointError",
    "adapt_weight_norm_keys",
    "load_exact",
    "load_generator_state",
    "load_state_dict_file",
    "strip_prefixes",
    "unwrap_state_dict",
]

# Wrapper keys under which the official files keep the model's state dict.
_WRAPPER_KEYS = ("generator", "generator_state_dict", "state_dict", "model")
# Prefixes added by DistributedDataParallel (accelerate saves unwrap=False) and torch.compile.
_PREFIXES = ("module.", "_orig_mod.")
_MAX_LISTED_KEYS = 20


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be found, read, or does not fit the model built from its config."""


# ---------------------------------------------------------------------------------------------
# Files -> state dict
# ---------------------------------------------------------------------------------------------


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict without the ``module.`` / ``_orig_mod.`` prefixes training wrappers add."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def unwrap_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the model's tensors in a loaded file (bare state dict or one of the wrappers)."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source}: no state dict found (expected a dict of tensors or one under {_WRAPPER_KEYS})")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: entries that are not tensors: {bad[:_MAX_LISTED_KEYS]}")
    return strip_prefixes(obj)


def _torch_load(path: Path) -> object:
    """``torch.load`` with no pickled code, memory-mapped where the file allows it: a training
    checkpoint's optimiser state next to the weights is then never read into memory."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):  # mmap needs the zip format (torch >= 1.6 writes it): older files load whole
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` / ``.pt`` / ``.bin`` file and return the model's state dict (on CPU): bare,
    or under one of the wrapper keys (``generator``, ``state_dict``, Amphion TTA's ``model``, ...)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        else:
            obj = _torch_load(path)
    except CheckpointError:
        raise
    except Exception as exc:  # corrupt file, or a pickle that needs more than tensors
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    return unwrap_state_dict(obj, str(path))


# ---------------------------------------------------------------------------------------------
# State dict -> model
# ---------------------------------------------------------------------------------------------


def adapt_weight_norm_keys(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Turn plain ``<conv>.weight`` entries into ``weight_g``/``weight_v`` where the model expects those.

    ``g = ||w||``, ``v = w`` reproduces ``w`` exactly up to float rounding (what NVIDIA's loader
    achieves by removing weight norm from the model instead).
    """
    sd = dict(state_dict)
    for prefix in weight_norm_prefixes(model):
        plain = prefix + "weight"
        if plain in sd and prefix + "weight_g" not in sd and prefix + "weight_v" not in sd:
            w = sd.pop(plain)
            sd[prefix + "weight_v"] = w
            sd[prefix + "weight_g"] = norm_except_dim0(w.float()).to(w.dtype)
    return sd


def _listing(title: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED_KEYS])
    more = f" ... (+{len(keys) - _MAX_LISTED_KEYS} more)" if len(keys) > _MAX_LISTED_KEYS else ""
    return f"\n  {title} ({len(keys)}): {shown}{more}"


def load_exact(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str = "checkpoint", *,
               error: type[Exception] = CheckpointError, assign: bool = False) -> None:
    """Load `sd` requiring exactly the model's keys and shapes; otherwise raise `error` naming the
    missing, unexpected and mis-shaped keys. Every model family's strict loading ends here."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    mismatched = sorted(
        f"{k} {tuple(sd[k].shape)} vs expected {tuple(expected[k].shape)}"
        for k in set(sd) & set(expected)
        if tuple(sd[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or mismatched:
        msg = f"{source} does not match the {type(model).__name__} built from its config:"
        if missing:
            msg += _listing("missing keys", missing)
        if unexpected:
            msg += _listing("unexpected keys", unexpected)
        if mismatched:
            msg += _listing("shape mismatches", mismatched)
        raise error(msg)
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in sd.items()}, strict=True, assign=assign)


def load_generator_state(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Strict load with a readable error (missing / unexpected / mis-shaped keys), after dropping
    training-wrapper prefixes and converting plain weight-norm keys."""
    load_exact(model, adapt_weight_norm_keys(model, strip_prefixes(state_dict)), source)

"""Reading the TTA checkpoint files.

Amphion's TTA trainer saves ``torch.save({"model": state_dict, "optimizer": ..., ...})`` (the UNet
``step-0570000_loss-0.2521.pt`` and the VAE ``step-0445000_loss-0.3306.pt``); the vocoder file
``g_01250000`` is jik876's ``{"generator": state_dict}``. :func:`read_state_dict` takes either, or a
bare state dict in ``.safetensors`` (the parity fixtures), and returns the model's tensors.
``torch.load`` runs with ``weights_only=True`` (no pickled code) and memory-maps the file when it can,
so the optimiser state stored next to the weights is never read into memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from models.core.checkpoints import CheckpointError, unwrap_state_dict

__all__ = ["CheckpointError", "read_state_dict"]

#: Where Amphion's TTA trainer keeps the model in a checkpoint dict.
MODEL_KEY = "model"


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        # mmap needs the zip format (torch >= 1.6 writes it by default); older files load whole
        if "mmap" not in str(exc):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The model's state dict in ``path`` (``.safetensors``, or a torch file: bare, under ``model``,
    or under one of the core wrapper keys such as ``generator``); training prefixes dropped."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        else:
            obj = _torch_load(path)
    except Exception as exc:  # a corrupt file, or a pickle that needs more than tensors
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if isinstance(obj, Mapping) and isinstance(obj.get(MODEL_KEY), Mapping):
        obj = obj[MODEL_KEY]
    return unwrap_state_dict(obj, str(path))

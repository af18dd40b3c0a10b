"""What the four Amphion SVC models share about their checkpoints: reading an Amphion experiment
folder (:func:`read_amphion_run`: ``args.json``, the newest ``checkpoint/*/`` model file,
``singers.json``) and the config checks every model runs on it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.core.checkpoints import CheckpointError
from models.core.configs import ConfigError, read_json
from models.svc.condition_encoder import ConditionEncoderConfig
from models.vocoders.checkpoints import find_amphion_weights

__all__ = [
    "AmphionRun",
    "check_condition_width",
    "check_model_type",
    "check_singer_table",
    "read_amphion_run",
    "read_singers",
    "require_section",
]


def require_section(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    """``parent[key]``, which must be an object."""
    section = parent.get(key)
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where}: no {key!r} section")
    return section


def check_model_type(args: Mapping[str, Any], expected: str) -> None:
    """An args.json that names another recipe (``model_type``) is refused by name."""
    found = args.get("model_type")
    if found is not None and found != expected:
        raise ConfigError(f"args.json is a {found!r} experiment, not {expected!r}")


def check_condition_width(condition: ConditionEncoderConfig, width: int, where: str) -> None:
    """The acoustic model's input width must be the condition encoder's output width."""
    if condition.output_dim != width:
        raise ConfigError(f"{where} is {width} but the condition encoder outputs {condition.output_dim}")


@dataclass(frozen=True)
class AmphionRun:
    """An Amphion experiment folder: the merged config, the model weights file, the singer table."""

    folder: Path
    args: dict[str, Any]
    weights: Path
    singers: dict[str, int] = field(default_factory=dict)


def read_singers(path: Path) -> dict[str, int]:
    """``singers.json`` (name -> ``spk_id``); a missing file is an empty table."""
    if not path.is_file():
        return {}
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in table.items()
    ):
        raise ConfigError(f"{path}: expected an object of singer name -> non-negative integer id")
    return dict(table)


def read_amphion_run(folder: str | Path) -> AmphionRun:
    """``<folder>/args.json`` + the newest ``checkpoint/<epoch-..._step-..._loss-...>/`` model file
    (accelerate's first model: ``model.safetensors`` or ``pytorch_model.bin``; never ``model_1.*``)
    + ``singers.json`` if present. Errors name the file or folder that is missing."""
    folder = Path(folder)
    args_path = folder / "args.json"
    if not args_path.is_file():
        raise CheckpointError(f"{folder}: no args.json (expected an Amphion experiment folder)")
    weights = find_amphion_weights(folder)
    return AmphionRun(folder, read_json(args_path), weights, read_singers(folder / "singers.json"))


def check_singer_table(singers: Mapping[str, int], table_size: int, where: str) -> None:
    """A singer id beyond the embedding table means a singers.json from another run."""
    too_big = sorted(name for name, idx in singers.items() if idx >= table_size)
    if too_big:
        raise ConfigError(f"{where}: singers.json ids of {too_big[:5]} are >= the singer table size {table_size}")

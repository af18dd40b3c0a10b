"""Configurations of MaskGCT's generation models: T2S and the two S2A models.

The parsers take the whole ``maskgct.json``, its ``model`` object or the section itself
(``t2s_model``, ``s2a_model``); a configuration they cannot use is a :class:`GenerationConfigError`.
``OFFICIAL_*`` hold the official values. What is fixed in Amphion's code rather than in the file:
see ``models/maskgct/README.md``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "OFFICIAL_S2A_1LAYER",
    "OFFICIAL_S2A_FULL",
    "OFFICIAL_T2S",
    "S2A_VARIANTS",
    "GenerationConfigError",
    "S2AConfig",
    "T2SConfig",
    "official_s2a_config",
    "parse_s2a_config",
    "parse_t2s_config",
    "read_config_file",
    "tiny_s2a_config",
    "tiny_t2s_config",
]

PHONE_VOCAB_SIZE = 1024
PHONE_PADDING_IDX = 1023

#: S2A variant name -> key of its section in ``model.s2a_model``.
S2A_VARIANTS = {"1layer": "s2a_1layer", "full": "s2a_full"}


class GenerationConfigError(ValueError):
    """A configuration that does not describe the requested MaskGCT model."""


@dataclass(frozen=True)
class T2SConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    cond_codebook_size: int          # semantic vocabulary (8192 officially)
    cfg_scale: float = 0.15          # training only
    cond_dim: int | None = None      # unused by the model
    phone_vocab_size: int = PHONE_VOCAB_SIZE
    phone_padding_idx: int = PHONE_PADDING_IDX

    def __post_init__(self) -> None:
        _check_backbone(self.hidden_size, self.num_heads, self.num_layers, "t2s_model")
        if self.cond_codebook_size < 1:
            raise GenerationConfigError(f"t2s_model: cond_codebook_size must be >= 1, got {self.cond_codebook_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class S2AConfig:
    num_quantizer: int
    hidden_size: int
    num_layers: int
    num_heads: int
    codebook_size: int               # acoustic codebook (1024 officially)
    cond_codebook_size: int          # semantic vocabulary (8192 officially)
    cfg_scale: float = 0.15          # training only
    mask_layer_schedule: str = "linear"  # training only
    cond_dim: int | None = None      # unused by the model
    predict_layer_1: bool = True     # training only

    def __post_init__(self) -> None:
        _check_backbone(self.hidden_size, self.num_heads, self.num_layers, "s2a_model")
        for name in ("num_quantizer", "codebook_size", "cond_codebook_size"):
            if getattr(self, name) < 1:
                raise GenerationConfigError(f"s2a_model: {name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_backbone(hidden: int, heads: int, layers: int, where: str) -> None:
    if hidden < 4 or heads < 1 or layers < 0:
        raise GenerationConfigError(f"{where}: bad sizes hidden_size={hidden} num_heads={heads} num_layers={layers}")
    if hidden % heads or (hidden // heads) % 2:
        raise GenerationConfigError(f"{where}: hidden_size {hidden} must split into num_heads {heads} even-sized heads")
    if hidden % 2:
        raise GenerationConfigError(f"{where}: hidden_size must be even, got {hidden}")


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a config JSON (Amphion writes json5-ish files: comments and trailing commas are accepted)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        from models.core.configs import loads_lenient  # tolerant parser for json5-style files

        data = loads_lenient(text)
    if not isinstance(data, dict):
        raise GenerationConfigError(f"{path}: expected a JSON object at the top level")
    return data


def _section(obj: dict[str, Any], path: tuple[str, ...], marker: str) -> tuple[dict[str, Any], str]:
    """Walk down ``path`` from whichever level ``obj`` is at; ``marker`` identifies the section itself."""
    if marker in obj:
        return obj, "config"
    for depth in range(len(path)):
        node: Any = obj
        ok = True
        for key in path[depth:]:
            if not isinstance(node, dict) or key not in node:
                ok = False
                break
            node = node[key]
        if ok and isinstance(node, dict):
            return node, ".".join(path[depth:])
    raise GenerationConfigError(
        f"no {'.'.join(path)} section found (top-level keys: {sorted(obj)[:10]}); "
        f"expected maskgct.json, its 'model' object, or the section itself"
    )


def _get(d: dict[str, Any], key: str, where: str, kind: type, default: Any = ...) -> Any:
    if key not in d:
        if default is ...:
            raise GenerationConfigError(f"{where}: missing key {key!r}")
        return default
    value = d[key]
    if value is None and default is not ... and default is None:
        return None
    if kind is bool:
        if not isinstance(value, bool):
            raise GenerationConfigError(f"{where}.{key}: expected true/false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise GenerationConfigError(f"{where}.{key}: expected an integer, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GenerationConfigError(f"{where}.{key}: expected a number, got {value!r}")
        return float(value)
    if not isinstance(value, kind):
        raise GenerationConfigError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def parse_t2s_config(obj: dict[str, Any]) -> T2SConfig:
    """:class:`T2SConfig` from maskgct.json, its ``model`` object or the ``t2s_model`` section."""
    sec, where = _section(obj, ("model", "t2s_model"), marker="cond_codebook_size")
    if "num_quantizer" in sec or "codebook_size" in sec:
        raise GenerationConfigError(f"{where}: this is an S2A section (it has num_quantizer/codebook_size), not t2s_model")
    return T2SConfig(
        hidden_size=_get(sec, "hidden_size", where, int),
        num_layers=_get(sec, "num_layers", where, int),
        num_heads=_get(sec, "num_heads", where, int),
        cond_codebook_size=_get(sec, "cond_codebook_size", where, int),
        cfg_scale=_get(sec, "cfg_scale", where, float, 0.15),
        cond_dim=_get(sec, "cond_dim", where, int, None),
    )


def parse_s2a_config(obj: dict[str, Any], variant: str) -> S2AConfig:
    """:class:`S2AConfig` of ``variant`` (``"1layer"`` or ``"full"``) from maskgct.json, its
    ``model`` object, the ``s2a_model`` object, or the variant's own section."""
    if variant not in S2A_VARIANTS:
        raise GenerationConfigError(f"unknown S2A variant {variant!r}; expected one of {sorted(S2A_VARIANTS)}")
    sec, where = _section(obj, ("model", "s2a_model", S2A_VARIANTS[variant]), marker="num_quantizer")
    return S2AConfig(
        num_quantizer=_get(sec, "num_quantizer", where, int),
        hidden_size=_get(sec, "hidden_size", where, int),
        num_layers=_get(sec, "num_layers", where, int),
        num_heads=_get(sec, "num_heads", where, int),
        codebook_size=_get(sec, "codebook_size", where, int),
        cond_codebook_size=_get(sec, "cond_codebook_size", where, int),
        cfg_scale=_get(sec, "cfg_scale", where, float, 0.15),
        mask_layer_schedule=_get(sec, "mask_layer_schedule", where, str, "linear"),
        cond_dim=_get(sec, "cond_dim", where, int, None),
        predict_layer_1=_get(sec, "predict_layer_1", where, bool, True),
    )


# ---------------------------------------------------------------------------------------------
# Official and tiny profiles
# ---------------------------------------------------------------------------------------------

#: ``model.t2s_model`` of Amphion's maskgct.json (746.4 M parameters).
OFFICIAL_T2S = T2SConfig(hidden_size=1536, num_layers=16, num_heads=16, cond_codebook_size=8192,
                         cfg_scale=0.15, cond_dim=1024)
#: ``model.s2a_model.s2a_1layer`` (330.3 M parameters).
OFFICIAL_S2A_1LAYER = S2AConfig(num_quantizer=1, hidden_size=1024, num_layers=16, num_heads=16, codebook_size=1024,
                                cond_codebook_size=8192, cfg_scale=0.15, mask_layer_schedule="linear",
                                cond_dim=1024, predict_layer_1=True)
#: ``model.s2a_model.s2a_full`` (353.4 M parameters).
OFFICIAL_S2A_FULL = S2AConfig(num_quantizer=12, hidden_size=1024, num_layers=16, num_heads=16, codebook_size=1024,
                              cond_codebook_size=8192, cfg_scale=0.15, mask_layer_schedule="linear",
                              cond_dim=1024, predict_layer_1=False)


def official_s2a_config(variant: str) -> S2AConfig:
    if variant not in S2A_VARIANTS:
        raise GenerationConfigError(f"unknown S2A variant {variant!r}; expected one of {sorted(S2A_VARIANTS)}")
    return OFFICIAL_S2A_1LAYER if variant == "1layer" else OFFICIAL_S2A_FULL


# Tiny-profile vocabularies, shared with the tiny codecs (models/maskgct/configs.py).
TINY_SEMANTIC_VOCAB = 1024
TINY_ACOUSTIC_CODEBOOK = 1024


def tiny_t2s_config() -> T2SConfig:
    """A CPU-cheap T2S with the official structure (the phone table stays 1024 x hidden). The
    semantic vocabulary is 1024 so that top-k filtering (0.98) keeps ~20 candidates and sampling,
    hence `seed`, really matters in the tiny profile too."""
    return T2SConfig(hidden_size=32, num_layers=2, num_heads=2, cond_codebook_size=TINY_SEMANTIC_VOCAB,
                     cfg_scale=0.15, cond_dim=32)


def tiny_s2a_config(variant: str) -> S2AConfig:
    """A CPU-cheap S2A: 1 quantizer for ``"1layer"``, 3 for ``"full"``; semantic vocabulary and
    acoustic codebook of 1024 (matching :func:`tiny_t2s_config` and the tiny codecs)."""
    if variant not in S2A_VARIANTS:
        raise GenerationConfigError(f"unknown S2A variant {variant!r}; expected one of {sorted(S2A_VARIANTS)}")
    return S2AConfig(num_quantizer=1 if variant == "1layer" else 3, hidden_size=32, num_layers=2, num_heads=2,
                     codebook_size=TINY_ACOUSTIC_CODEBOOK, cond_codebook_size=TINY_SEMANTIC_VOCAB, cfg_scale=0.15,
                     mask_layer_schedule="linear",
                     cond_dim=32, predict_layer_1=variant == "1layer")

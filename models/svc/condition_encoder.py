"""The ConditionEncoder shared by Amphion's four SVC recipes: frame features -> the acoustic model's
condition ``[B, T, D]``.

Contract (others build on it):

* :func:`parse_condition_encoder_config` takes the WHOLE merged ``args.json`` dict (the reference's
  ``cfg``), reads ``model.condition_encoder`` and copies ``preprocess.f0_min`` / ``f0_max`` into it as
  the reference's ``_build_model`` does. Missing ``use_f0`` / ``use_uv`` / ``use_energy`` mean true (the
  official args.json predates those keys). :func:`tiny_condition_encoder_config` and
  :func:`official_condition_encoder_config` give the tiny and the MultipleContentsSVC release sizes.
* ``ConditionEncoder(config)``; ``forward(frame_pitch, frame_uv, frame_energy, whisper_feat,
  contentvec_feat, spk_id) -> [B, T, output_dim]`` float32, with ``frame_pitch`` ``[B, T]`` in Hz (0 =
  unvoiced; float64 as the front end hands it over: the pitch bins are computed in its dtype),
  ``frame_uv`` ``[B, T]`` int with **1 = UNVOICED**, ``frame_energy`` ``[B, T]``, ``whisper_feat`` ``[B,
  T, whisper_dim]``, ``contentvec_feat`` ``[B, T, contentvec_dim]``, ``spk_id`` ``[B, 1]`` int (the
  target singer's index in ``singers.json``). Inputs of disabled parts may be None.
* Parameter names are the official checkpoint's without the ``0.`` that the recipes' ``ModuleList([
  condition_encoder, acoustic_mapper])`` adds (VitsSVC's ``condition_encoder.`` likewise):
  ``melody_encoder.nn.weight``, ``melody_encoder.uv_embedding.weight``, ``loudness_encoder.energy_bins``
  (a constant, but stored: load it, never recompute it), ``loudness_encoder.nn.weight``,
  ``whisper_encoder.nn.{weight,bias}``, ``contentvec_encoder.nn.{weight,bias}``,
  ``singer_encoder.nn.weight``. :func:`sub_state_dict` cuts that part out of a full checkpoint.
* :func:`f0_to_coarse` (Hz -> pitch bin ids) and :func:`energy_to_bins` (energy -> loudness ids) are the
  two quantisers, usable on their own.

How the reference computes it, and where we differ: ``models/svc/README.md`` ("ConditionEncoder").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from models.core.checkpoints import load_exact
from models.core.configs import ConfigError
from models.core.random_init import init_random_weights

__all__ = [
    "ConditionEncoder",
    "ConditionEncoderConfig",
    "ConfigError",
    "LOUDNESS_RANGE",
    "OFFICIAL_CONDITION_ENCODER_JSON",
    "build_condition_encoder",
    "config_dict",
    "energy_bin_edges",
    "energy_to_bins",
    "f0_to_coarse",
    "official_condition_encoder_config",
    "parse_condition_encoder_config",
    "sub_state_dict",
    "tiny_condition_encoder_config",
]

#: ``model.condition_encoder`` of the official ``vocalist_l1_contentvec+whisper/args.json``
#: (``amphion/singing_voice_conversion``), with the f0 range its ``preprocess`` section holds.
OFFICIAL_CONDITION_ENCODER_JSON: dict[str, Any] = {
    "merge_mode": "add",
    "use_whisper": True,
    "whisper_dim": 1024,
    "use_contentvec": True,
    "contentvec_dim": 256,
    "use_mert": False,
    "use_wenet": False,
    "use_conformer_for_content_features": False,
    "content_encoder_dim": 384,
    "input_melody_dim": 1,
    "output_melody_dim": 384,
    "n_bins_melody": 256,
    "input_loudness_dim": 1,
    "output_loudness_dim": 384,
    "n_bins_loudness": 256,
    "use_spkid": True,
    "output_singer_dim": 384,
    "singer_table_size": 512,
    "f0_min": 50,
    "f0_max": 1100,
}

#: The LoudnessEncoder's energy range: its bin edges are log-spaced between these (the reference's
#: "set empirically" constants; the edges are stored in the checkpoints).
LOUDNESS_RANGE = (1e-30, 1.5)

# The tiny profile's feature sizes: those of the tiny Whisper (``whisper_features.TINY_WHISPER_DIM``)
# and tiny ContentVec (``contentvec.TINY_CONTENTVEC_DIM``), so that the tiny front ends feed it.
_TINY_WHISPER_DIM = 32
_TINY_CONTENTVEC_DIM = 16
_TINY_DIM = 16
_TINY_SINGER_TABLE = 16  # >= the 15 singers of the official table


@dataclass(frozen=True)
class ConditionEncoderConfig:
    """What the reference's ConditionEncoder reads from ``model.condition_encoder`` (same key names)."""

    merge_mode: str = "add"
    use_whisper: bool = True
    whisper_dim: int = 1024
    use_contentvec: bool = True
    contentvec_dim: int = 256
    content_encoder_dim: int = 384
    use_f0: bool = True
    use_uv: bool = True
    input_melody_dim: int = 1
    output_melody_dim: int = 384
    n_bins_melody: int = 256
    f0_min: float = 50.0
    f0_max: float = 1100.0
    use_energy: bool = True
    input_loudness_dim: int = 1
    output_loudness_dim: int = 384
    n_bins_loudness: int = 256
    use_spkid: bool = True
    output_singer_dim: int = 384
    singer_table_size: int = 512

    def __post_init__(self) -> None:
        if self.merge_mode not in ("add", "concat"):
            raise ConfigError(f"condition_encoder.merge_mode must be 'add' or 'concat', got {self.merge_mode!r}")
        if not (self.use_whisper or self.use_contentvec):
            raise ConfigError("condition_encoder: at least one content feature (use_whisper, use_contentvec) is needed")
        if self.use_f0 and (self.input_melody_dim != 1 or self.n_bins_melody < 2):
            # n_bins 0 (an unquantised Linear) is a reference branch that returns its input unprojected.
            raise ConfigError("condition_encoder: only the quantised melody encoder (input_melody_dim 1, "
                              f"n_bins_melody >= 2) is supported, got {self.input_melody_dim}, {self.n_bins_melody}")
        if self.use_energy and (self.input_loudness_dim != 1 or self.n_bins_loudness < 2):
            raise ConfigError("condition_encoder: only the quantised loudness encoder (input_loudness_dim 1, "
                              f"n_bins_loudness >= 2) is supported, got {self.input_loudness_dim}, "
                              f"{self.n_bins_loudness}")
        if self.use_f0 and not 0 < self.f0_min < self.f0_max:
            raise ConfigError(f"condition_encoder: need 0 < f0_min < f0_max, got {self.f0_min}, {self.f0_max}")
        if self.use_spkid and self.singer_table_size < 1:
            raise ConfigError(f"condition_encoder.singer_table_size must be positive, got {self.singer_table_size}")
        if self.merge_mode == "add" and len(set(self.part_dims)) > 1:
            raise ConfigError(f"condition_encoder: merge_mode 'add' needs equal output dims, got {self.part_dims}")

    @property
    def part_dims(self) -> tuple[int, ...]:
        """Output width of each enabled part, in the order they are merged."""
        dims = []
        if self.use_f0:
            dims.append(self.output_melody_dim)
        if self.use_energy:
            dims.append(self.output_loudness_dim)
        dims += [self.content_encoder_dim] * (int(self.use_whisper) + int(self.use_contentvec))
        if self.use_spkid:
            dims.append(self.output_singer_dim)
        return tuple(dims)

    @property
    def output_dim(self) -> int:
        """D of the ``[B, T, D]`` condition."""
        return self.part_dims[0] if self.merge_mode == "add" else sum(self.part_dims)


# Flags the reference reads whatever the config, and the keys each enabled part reads.
_REQUIRED_FLAGS = ("use_whisper", "use_contentvec", "use_spkid")
_PART_KEYS = {
    "use_whisper": ("whisper_dim", "content_encoder_dim"),
    "use_contentvec": ("contentvec_dim", "content_encoder_dim"),
    "use_f0": ("input_melody_dim", "output_melody_dim", "n_bins_melody"),
    "use_energy": ("input_loudness_dim", "output_loudness_dim", "n_bins_loudness"),
    "use_spkid": ("output_singer_dim", "singer_table_size"),
}
# Flags that the checkpoint-era code did not have (it always built these parts): absent means true.
_ABSENT_MEANS_TRUE = ("use_f0", "use_uv", "use_energy")
# Parts the reference can build but nothing here serves (no front end, no published checkpoint).
_UNSUPPORTED = ("use_mert", "use_wenet", "use_conformer_for_content_features")


def _typed(key: str, value: Any) -> Any:
    """``value`` as the config field's type (the defaults say which)."""
    kind = type(getattr(ConditionEncoderConfig, key))
    if kind is bool:
        return bool(value)
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"condition_encoder.{key}: expected {kind.__name__}, got {value!r}") from exc


def parse_condition_encoder_config(args: Mapping[str, Any]) -> ConditionEncoderConfig:
    """The ConditionEncoder's config from a whole (merged) Amphion ``args.json`` dict."""
    model = args.get("model")
    section = model.get("condition_encoder") if isinstance(model, Mapping) else None
    if not isinstance(section, Mapping):
        raise ConfigError("args.json: no model.condition_encoder section")
    for key in _UNSUPPORTED:
        if section.get(key, False):
            raise ConfigError(f"condition_encoder.{key} is not supported (no SVC release uses it)")
    missing = [flag for flag in _REQUIRED_FLAGS if flag not in section]
    values: dict[str, Any] = {key: bool(section.get(key, True)) for key in _ABSENT_MEANS_TRUE}
    values.update({flag: bool(section[flag]) for flag in _REQUIRED_FLAGS if flag in section})
    read = ["merge_mode"] + [key for flag, keys in _PART_KEYS.items() if values.get(flag) for key in keys]
    missing += [key for key in dict.fromkeys(read) if key not in section]
    if missing:
        raise ConfigError(f"condition_encoder: missing keys {missing}")
    values.update({key: _typed(key, section[key]) for key in read})
    if values["use_f0"]:
        # Every recipe's _build_model overwrites the section's range with preprocess's.
        preprocess = args.get("preprocess") if isinstance(args.get("preprocess"), Mapping) else {}
        for key in ("f0_min", "f0_max"):
            source = preprocess if key in preprocess else section
            if key not in source:
                raise ConfigError(f"args.json: preprocess.{key} is missing")
            values[key] = _typed(key, source[key])
    return ConditionEncoderConfig(**values)


def official_condition_encoder_config() -> ConditionEncoderConfig:
    """The MultipleContentsSVC release's sizes (whisper 1024, ContentVec 256, D 384, 512 singers)."""
    return parse_condition_encoder_config({"model": {"condition_encoder": OFFICIAL_CONDITION_ENCODER_JSON}})


def tiny_condition_encoder_config(*, whisper_dim: int = _TINY_WHISPER_DIM,
                                  contentvec_dim: int = _TINY_CONTENTVEC_DIM, dim: int = _TINY_DIM,
                                  singer_table_size: int = _TINY_SINGER_TABLE) -> ConditionEncoderConfig:
    """The official layout at CPU-cheap sizes, matching the tiny Whisper and ContentVec by default."""
    return ConditionEncoderConfig(
        whisper_dim=whisper_dim, contentvec_dim=contentvec_dim, content_encoder_dim=dim, output_melody_dim=dim,
        output_loudness_dim=dim, output_singer_dim=dim, singer_table_size=singer_table_size,
    )


# ---------------------------------------------------------------------------------------------
# The two quantisers
# ---------------------------------------------------------------------------------------------


def _hz_to_mel(hz: float) -> float:
    # numpy's log, as the reference takes it: a last-bit difference here could move a bin edge.
    return float(1127 * np.log(1 + hz / 700))


def f0_to_coarse(f0: torch.Tensor, n_bins: int = 256, f0_min: float = 50.0, f0_max: float = 1100.0) -> torch.Tensor:
    """F0 in Hz (any shape; 0 = unvoiced) -> pitch bin ids in ``[1, n_bins - 1]`` (int64).

    The mel-scale pitch ``1127 ln(1 + f0/700)`` is mapped linearly so that ``f0_min`` lands on 1 and
    ``f0_max`` on ``n_bins - 1``, clipped to that range and rounded half up. Computed in ``f0``'s own
    dtype and in the reference's operation order: float64 and float32 inputs can round a value near a
    bin edge differently, and the served pipeline hands over float64 as the reference does.
    """
    mel_lo, mel_hi = _hz_to_mel(f0_min), _hz_to_mel(f0_max)
    mel = 1127 * (1 + f0 / 700).log()
    # Only positive mels are rescaled; 0 Hz (mel 0) then falls to the bottom bin like anything below f0_min.
    scaled = torch.where(mel > 0, (mel - mel_lo) * (n_bins - 2) / (mel_hi - mel_lo) + 1, mel)
    return (scaled.clamp(1, n_bins - 1) + 0.5).long()


def energy_bin_edges(n_bins: int = 256, low: float = LOUDNESS_RANGE[0],
                     high: float = LOUDNESS_RANGE[1]) -> torch.Tensor:
    """The LoudnessEncoder's ``n_bins - 1`` edges as its constructor makes them (float32, log-spaced).

    Only for building a model from scratch: the checkpoints store the edges, and recomputing them in
    another precision moves thresholds, so loaded models use the stored ones.
    """
    return torch.linspace(math.log(low), math.log(high), n_bins - 1, dtype=torch.float32).exp()


def energy_to_bins(energy: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Frame energy -> loudness ids in ``[0, len(edges)]``: the number of edges strictly below it."""
    return torch.bucketize(energy, edges, right=False)


# ---------------------------------------------------------------------------------------------
# The module
# ---------------------------------------------------------------------------------------------


class _Projection(nn.Module):
    """A content feature's Linear (``<name>.nn``): ``[B, T, feature_dim] -> [B, T, D]``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.nn = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nn(x.to(self.nn.weight.dtype))


class _Melody(nn.Module):
    """Pitch bin embedding, plus the voicing embedding (index 1 = unvoiced) when ``use_uv``."""

    def __init__(self, config: ConditionEncoderConfig) -> None:
        super().__init__()
        self.n_bins, self.f0_min, self.f0_max = config.n_bins_melody, config.f0_min, config.f0_max
        self.use_uv = config.use_uv
        self.nn = nn.Embedding(config.n_bins_melody, config.output_melody_dim)
        # Built (and stored in the checkpoints) whether or not use_uv is set.
        self.uv_embedding = nn.Embedding(2, config.output_melody_dim)

    def forward(self, frame_pitch: torch.Tensor, frame_uv: torch.Tensor | None) -> torch.Tensor:
        out = self.nn(f0_to_coarse(frame_pitch, self.n_bins, self.f0_min, self.f0_max))
        if self.use_uv:
            out = out + self.uv_embedding(frame_uv.long())
        return out


class _Loudness(nn.Module):
    """Energy bin embedding. ``energy_bins`` is a frozen parameter (the checkpoints' key), kept float32
    whatever dtype the model is cast to: 1e-30 and its neighbours do not survive half precision."""

    def __init__(self, config: ConditionEncoderConfig) -> None:
        super().__init__()
        self.energy_bins = nn.Parameter(energy_bin_edges(config.n_bins_loudness), requires_grad=False)
        self.nn = nn.Embedding(config.n_bins_loudness, config.output_loudness_dim)

    def _apply(self, fn, recurse: bool = True):
        edges = self.energy_bins.data.float().clone()
        out = super()._apply(fn, recurse)
        self.energy_bins.data = edges.to(self.energy_bins.device)
        return out

    def forward(self, frame_energy: torch.Tensor) -> torch.Tensor:
        return self.nn(energy_to_bins(frame_energy.float(), self.energy_bins))


class _Singer(nn.Module):
    def __init__(self, config: ConditionEncoderConfig) -> None:
        super().__init__()
        self.nn = nn.Embedding(config.singer_table_size, config.output_singer_dim)

    def forward(self, spk_id: torch.Tensor) -> torch.Tensor:
        return self.nn(spk_id.long())  # [B, 1] -> [B, 1, D]


class ConditionEncoder(nn.Module):
    """Amphion's ``ConditionEncoder`` (see the module docstring for the contract)."""

    def __init__(self, config: ConditionEncoderConfig) -> None:
        super().__init__()
        self.config = config
        # Attribute names (and so parameter names) are the reference's.
        if config.use_whisper:
            self.whisper_encoder = _Projection(config.whisper_dim, config.content_encoder_dim)
        if config.use_contentvec:
            self.contentvec_encoder = _Projection(config.contentvec_dim, config.content_encoder_dim)
        if config.use_f0:
            self.melody_encoder = _Melody(config)
        if config.use_energy:
            self.loudness_encoder = _Loudness(config)
        if config.use_spkid:
            self.singer_encoder = _Singer(config)

    @property
    def output_dim(self) -> int:
        return self.config.output_dim

    def forward(
        self,
        frame_pitch: torch.Tensor | None = None,
        frame_uv: torch.Tensor | None = None,
        frame_energy: torch.Tensor | None = None,
        whisper_feat: torch.Tensor | None = None,
        contentvec_feat: torch.Tensor | None = None,
        spk_id: torch.Tensor | None = None,
    ) -> torch.Tensor:
        cfg = self.config
        given = {"frame_pitch": frame_pitch, "frame_uv": frame_uv, "frame_energy": frame_energy,
                 "whisper_feat": whisper_feat, "contentvec_feat": contentvec_feat, "spk_id": spk_id}
        needed = {"frame_pitch": cfg.use_f0, "frame_uv": cfg.use_f0 and cfg.use_uv, "frame_energy": cfg.use_energy,
                  "whisper_feat": cfg.use_whisper, "contentvec_feat": cfg.use_contentvec, "spk_id": cfg.use_spkid}
        missing = [name for name, need in needed.items() if need and given[name] is None]
        if missing:
            raise ValueError(f"ConditionEncoder needs {missing} with this config")
        # The reference's merge order: melody, loudness, whisper, contentvec, singer.
        parts = []
        if cfg.use_f0:
            parts.append(self.melody_encoder(frame_pitch, frame_uv))
        if cfg.use_energy:
            parts.append(self.loudness_encoder(frame_energy))
        if cfg.use_whisper:
            parts.append(self.whisper_encoder(whisper_feat))
        if cfg.use_contentvec:
            parts.append(self.contentvec_encoder(contentvec_feat))
        frames = parts[-1].shape[1]  # the content features set the length the singer is broadcast over
        if cfg.use_spkid:
            parts.append(self.singer_encoder(spk_id).expand(-1, frames, -1))
        if cfg.merge_mode == "concat":
            return torch.cat(parts, dim=-1)
        # Stacked and summed in one reduction, as the reference does (not a chain of additions).
        return torch.stack(parts).sum(dim=0)


# ---------------------------------------------------------------------------------------------
# Building and loading
# ---------------------------------------------------------------------------------------------


def sub_state_dict(state_dict: Mapping[str, torch.Tensor], prefix: str = "0.") -> dict[str, torch.Tensor]:
    """The entries under ``prefix`` (the recipes' ``0.`` or VitsSVC's ``condition_encoder.``), prefix removed."""
    return {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}


def build_condition_encoder(
    config: ConditionEncoderConfig | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    source: str = "condition encoder state dict",
) -> ConditionEncoder:
    """A ConditionEncoder from ``config`` (None: tiny) and its state dict (keys without the ``0.``
    prefix), loaded strictly; None: seeded random weights (embeddings standard normal, Linears
    uniform, the energy edges as constructed). Eval mode, on ``device``."""
    model = ConditionEncoder(tiny_condition_encoder_config() if config is None else config)
    if state_dict is None:
        init_random_weights(model, seed)
    else:
        load_exact(model, state_dict, source)
    return model.eval().to(device)


def config_dict(config: ConditionEncoderConfig) -> dict[str, Any]:
    """The config as a ``model.condition_encoder`` section (round-trips through the parser)."""
    return asdict(config)

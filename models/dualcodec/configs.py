"""DualCodec configuration, parsed from the reference's Hydra layout with the reference's defaults.

:class:`DualCodecConfig`'s defaults are the reference constructor's, so a yaml that leaves a key
out parses as the reference builds it; ``parse_dualcodec_config`` / ``read_dualcodec_config`` read
one (unknown keys are a :class:`ConfigError`, as they are for the reference's constructor),
``official_config`` / ``tiny_config`` give the official and tiny ones by model id. The defaults
against the official yamls, and the 1024-channel constraint: ``models/dualcodec/README.md``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from models.core.configs import ConfigError, read_json

__all__ = [
    "MODEL_IDS",
    "OFFICIAL_DUALCODEC_CONFIGS",
    "SEMANTIC_DIM",
    "ConfigError",
    "DualCodecConfig",
    "config_to_reference",
    "official_config",
    "parse_dualcodec_config",
    "read_dualcodec_config",
    "tiny_config",
]

#: Width of the semantic features (w2v-bert-2.0 hidden size), a literal in the reference.
SEMANTIC_DIM = 1024
#: Hidden width of every ConvNeXt block of the semantic path, also a literal in the reference.
CONVNEXT_INTERMEDIATE_DIM = 2048

MODEL_IDS = ("12hz_v1", "25hz_v1")

_TARGET = "dualcodec.model_codec.DualCodec"
_SAMPLE_RATE_REF = "${..SAMPLE_RATE}"
_IGNORED_KEYS = frozenset({"quantizer_dropout", "distill_projection_out_dim"})

#: ``conf/model/dualcodec_12hz_16384_4096_8vq.yaml`` and ``..._25hz_16384_1024_12vq.yaml``, verbatim
#: (the sample rate still as Hydra's interpolation string).
OFFICIAL_DUALCODEC_CONFIGS: dict[str, dict[str, Any]] = {
    "12hz_v1": {
        "SAMPLE_RATE": 24000,
        "model": {
            "_target_": _TARGET,
            "sample_rate": _SAMPLE_RATE_REF,
            "encoder_rates": [4, 5, 6, 8, 2],
            "decoder_rates": [2, 8, 6, 5, 4],
            "encoder_dim": 32,
            "decoder_dim": 1536,
            "n_codebooks": 7,
            "quantizer_dropout": 1.0,
            "codebook_size": 4096,
            "semantic_codebook_size": 16384,
            "is_causal": True,
            "semantic_downsample_factor": 4,
        },
        "discriminator": {"_target_": "dualcodec.model_codec.Discriminator", "sample_rate": _SAMPLE_RATE_REF},
    },
    "25hz_v1": {
        "SAMPLE_RATE": 24000,
        "model": {
            "_target_": _TARGET,
            "sample_rate": _SAMPLE_RATE_REF,
            "encoder_rates": [4, 5, 6, 8],
            "decoder_rates": [8, 6, 5, 4],
            "n_codebooks": 11,
            "quantizer_dropout": 1.0,
            "codebook_size": 1024,
            "semantic_codebook_size": 16384,
            "is_causal": True,
        },
        "discriminator": {"_target_": "dualcodec.model_codec.Discriminator", "sample_rate": _SAMPLE_RATE_REF},
    },
}


@dataclass(frozen=True)
class DualCodecConfig:
    encoder_dim: int = 64
    encoder_rates: tuple[int, ...] = (2, 4, 8, 8)
    latent_dim: int | None = None
    decoder_dim: int = 1536
    decoder_rates: tuple[int, ...] = (8, 8, 4, 2)
    n_codebooks: int = 9
    codebook_size: int = 1024
    semantic_codebook_size: int = 16384
    codebook_dim: int = 8
    semantic_codebook_dim: int = 8
    sample_rate: int = 44100
    convnext_dim: int = 768
    convnext_layers: int = 4
    decode_semantic_for_codec: bool = True
    is_causal: bool = False
    semantic_downsample_factor: int = 2
    semantic_dim: int = SEMANTIC_DIM
    """Width of the w2v-bert features. Not a reference setting: the reference hard-codes 1024; it is
    a field here only so that the tiny profile can pair with the (32-wide) tiny w2v-bert."""

    def __post_init__(self) -> None:
        for name in ("encoder_rates", "decoder_rates"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
            rates = getattr(self, name)
            if not rates or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in rates):
                raise ConfigError(
                    f"DualCodecConfig.{name} must be a non-empty list of positive integers, got {list(rates)}"
                )
        names = ["encoder_dim", "decoder_dim", "n_codebooks", "codebook_size", "semantic_codebook_size",
                 "codebook_dim", "semantic_codebook_dim", "sample_rate", "convnext_dim", "convnext_layers",
                 "semantic_downsample_factor", "semantic_dim"] + (["latent_dim"] if self.latent_dim is not None else [])
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"DualCodecConfig.{name} must be a positive integer, got {value!r}")
        if self.latent_width != self.semantic_dim:
            raise ConfigError(
                f"the DAC latent is {self.latent_width} wide (latent_dim, or encoder_dim * 2**len(encoder_rates)) "
                f"but the semantic path is {self.semantic_dim} channels (the reference hard-codes {SEMANTIC_DIM})"
            )
        if not self.decode_semantic_for_codec and self.convnext_dim != self.semantic_dim:
            raise ConfigError(
                f"decode_semantic_for_codec false needs convnext_dim {self.semantic_dim} (the reference asserts it)"
            )
        if self.decoder_dim // 2 ** len(self.decoder_rates) < 1:
            raise ConfigError(f"decoder_dim {self.decoder_dim} cannot be halved {len(self.decoder_rates)} times")

    @property
    def latent_width(self) -> int:
        """Channels of the DAC latent (``latent_dim``, or the encoder's last width when None)."""
        return self.latent_dim if self.latent_dim is not None else self.encoder_dim * 2 ** len(self.encoder_rates)

    @property
    def hop_length(self) -> int:
        """Waveform samples per code frame (the product of the encoder strides)."""
        return math.prod(self.encoder_rates)

    @property
    def frame_rate(self) -> float:
        """Code frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def max_quantizers(self) -> int:
        """The semantic codebook plus every acoustic stage (``num_quantizers`` of encode is 1..this)."""
        return self.n_codebooks + 1


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def _model_section(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The constructor kwargs: ``raw["model"]`` (the yaml layout, sample-rate interpolation resolved)
    or ``raw`` itself."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"DualCodec config: expected a mapping, got {type(raw).__name__}")
    model = raw.get("model")
    section = dict(model) if isinstance(model, Mapping) else dict(raw)
    if section.get("sample_rate") == _SAMPLE_RATE_REF:
        if "SAMPLE_RATE" not in raw:
            raise ConfigError(f"DualCodec config: sample_rate is {_SAMPLE_RATE_REF!r} but there is no SAMPLE_RATE")
        section["sample_rate"] = raw["SAMPLE_RATE"]
    return section


def _check_type(key: str, value: Any, default: Any) -> Any:
    where = f"DualCodec config: {key!r}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list of integers, got {value!r}")
        return tuple(_check_type(key, v, 0) for v in value)
    if value is None and key == "latent_dim":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
        hint = " (per-codebook dims are not supported)" if isinstance(value, (list, tuple)) else ""
        raise ConfigError(f"{where} must be an integer, got {value!r}{hint}")
    return int(value)


def parse_dualcodec_config(raw: Mapping[str, Any]) -> DualCodecConfig:
    """A :class:`DualCodecConfig` from the yaml layout (``{"SAMPLE_RATE", "model": {...}}``) or from the
    ``model`` section alone; keys it leaves out take the reference's class defaults."""
    section = _model_section(raw)
    target = section.pop("_target_", _TARGET)
    if not (isinstance(target, str) and target.rsplit(".", 1)[-1] == "DualCodec"):
        raise ConfigError(f"DualCodec config: _target_ is {target!r}, not the DualCodec class")
    defaults = asdict(DualCodecConfig())
    unknown = sorted(set(section) - set(defaults) - _IGNORED_KEYS)
    if unknown:
        raise ConfigError(f"DualCodec config: unknown keys {unknown} (DualCodec.__init__ would reject them)")
    kwargs = {
        key: _check_type(key, section[key], DualCodecConfig.__dataclass_fields__[key].default)
        for key in defaults if key in section
    }
    return DualCodecConfig(**kwargs)


def read_dualcodec_config(path: str | Path) -> dict[str, Any]:
    """A config file as a dict: the reference's ``.yaml`` or a ``.json`` of the same layout."""
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        import yaml  # a dependency of ray[serve]

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        return data
    return read_json(path)


def config_to_reference(config: DualCodecConfig) -> dict[str, Any]:
    """The yaml layout (resolved) that the reference would build ``config`` from."""
    model = {"_target_": _TARGET, **asdict(config)}
    for key in ("encoder_rates", "decoder_rates"):
        model[key] = list(model[key])
    return {"SAMPLE_RATE": config.sample_rate, "model": model}


# ---------------------------------------------------------------------------------------------
# Official and tiny profiles
# ---------------------------------------------------------------------------------------------


def _check_model_id(model_id: str) -> None:
    if model_id not in MODEL_IDS:
        raise ValueError(f"unknown DualCodec model {model_id!r}; expected one of {', '.join(MODEL_IDS)}")


def official_config(model_id: str) -> DualCodecConfig:
    """The configuration of an official checkpoint (``"12hz_v1"`` or ``"25hz_v1"``)."""
    _check_model_id(model_id)
    return parse_dualcodec_config(copy.deepcopy(OFFICIAL_DUALCODEC_CONFIGS[model_id]))


def tiny_config(model_id: str, semantic_dim: int = SEMANTIC_DIM) -> DualCodecConfig:
    """The official structure and I/O contract (24 kHz, same hop / frame rate, semantic pooling,
    number of quantizers and codebook sizes) with narrow convolutions: fast on CPU. ``semantic_dim``
    (default the official 1024) matches the w2v-bert the codec is paired with: the serving tiny
    profile uses the tiny w2v-bert's width."""
    official = official_config(model_id)
    return DualCodecConfig(
        **{
            **asdict(official),
            "encoder_dim": 2,
            "latent_dim": semantic_dim,
            "decoder_dim": 2 ** (len(official.decoder_rates) + 1),
            "convnext_dim": 16,
            "convnext_layers": 2,
            "semantic_dim": semantic_dim,
        }
    )

"""FACodec configuration: the constructor arguments of Amphion's ``FACodecEncoder`` / ``FACodecDecoder``.

:class:`FACodecConfig`'s defaults are the official (README) arguments, so ``FACodecConfig()`` is the
released model; :func:`parse_facodec_config` reads the kwargs shape ``{"encoder": ..., "decoder":
..., "timbre_encoder": ...}`` where a missing key takes the reference CLASS default
(:data:`REFERENCE_CLASS_DEFAULTS`); :func:`tiny_facodec_config` is the tiny profile;
:func:`training_only_prefixes` names the checkpoint heads inference skips. Bad values are a
:class:`ConfigError`. How the README and class defaults differ: ``models/facodec/README.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from models.core.configs import ConfigError, read_json

__all__ = [
    "FACODEC_SAMPLE_RATE",
    "OFFICIAL_FACODEC_KWARGS",
    "REFERENCE_CLASS_DEFAULTS",
    "ConfigError",
    "FACodecConfig",
    "FACodecDecoderConfig",
    "FACodecEncoderConfig",
    "TimbreEncoderConfig",
    "official_facodec_config",
    "parse_facodec_config",
    "read_facodec_config",
    "tiny_facodec_config",
    "training_only_prefixes",
]

#: FACodec works on 16 kHz mono audio (the README loads it with ``librosa.load(sr=16000)``).
FACODEC_SAMPLE_RATE = 16000

#: The README's construction (Amphion commit d3de90f, ``models/codec/ns3_codec/README.md``).
OFFICIAL_FACODEC_KWARGS: dict[str, dict[str, Any]] = {
    "encoder": {"ngf": 32, "up_ratios": [2, 4, 5, 5], "out_channels": 256},
    "decoder": {
        "in_channels": 256,
        "upsample_initial_channel": 1024,
        "ngf": 32,
        "up_ratios": [5, 5, 4, 2],
        "vq_num_q_c": 2,
        "vq_num_q_p": 1,
        "vq_num_q_r": 3,
        "vq_dim": 256,
        "codebook_dim": 8,
        "codebook_size_prosody": 10,
        "codebook_size_content": 10,
        "codebook_size_residual": 10,
        "use_gr_x_timbre": True,
        "use_gr_residual_f0": True,
        "use_gr_residual_phone": True,
    },
}

#: The reference constructors' own defaults (what a key missing from a kwargs dict means).
REFERENCE_CLASS_DEFAULTS: dict[str, dict[str, Any]] = {
    "encoder": {"ngf": 32, "up_ratios": [2, 4, 5, 5], "out_channels": 1024},
    "decoder": {
        "in_channels": 256,
        "upsample_initial_channel": 1536,
        "ngf": 32,
        "up_ratios": [5, 5, 4, 2],
        "vq_num_q_c": 2,
        "vq_num_q_p": 1,
        "vq_num_q_r": 3,
        "vq_dim": 1024,
        "codebook_dim": 8,
        "codebook_size_prosody": 10,
        "codebook_size_content": 10,
        "codebook_size_residual": 10,
        "use_gr_content_f0": False,
        "use_gr_prosody_phone": False,
        "use_gr_residual_f0": False,
        "use_gr_residual_phone": False,
        "use_gr_x_timbre": False,
    },
    # Literals inside FACodecDecoder.__init__ (dropout 0.1 and use_cln False are not configurable).
    "timbre_encoder": {
        "encoder_layer": 4,
        "encoder_hidden": 256,
        "encoder_head": 4,
        "conv_filter_size": 1024,
        "conv_kernel_size": 5,
    },
}

# FACodecDecoder arguments that only training reads.
_TRAINING_ONLY_DECODER_ARGS = frozenset({
    "vq_commit_weight", "vq_weight_init", "vq_full_commit_loss", "quantizer_dropout", "dropout_type",
    "use_random_mask_residual", "prob_random_mask_residual",
})


@dataclass(frozen=True)
class FACodecEncoderConfig:
    ngf: int = 32
    up_ratios: tuple[int, ...] = (2, 4, 5, 5)
    out_channels: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "up_ratios", tuple(self.up_ratios))
        _positive(self, ("ngf", "out_channels"))
        _ratios(self)

    @property
    def hop_length(self) -> int:
        return math.prod(self.up_ratios)

    @property
    def width(self) -> int:
        """Channels before the last conv (``ngf`` doubled once per stride)."""
        return self.ngf * 2 ** len(self.up_ratios)


@dataclass(frozen=True)
class FACodecDecoderConfig:
    in_channels: int = 256
    upsample_initial_channel: int = 1024
    ngf: int = 32
    up_ratios: tuple[int, ...] = (5, 5, 4, 2)
    vq_num_q_c: int = 2
    vq_num_q_p: int = 1
    vq_num_q_r: int = 3
    vq_dim: int = 256
    codebook_dim: int = 8
    codebook_size_prosody: int = 10
    codebook_size_content: int = 10
    codebook_size_residual: int = 10
    use_gr_content_f0: bool = False
    use_gr_prosody_phone: bool = False
    use_gr_residual_f0: bool = True
    use_gr_residual_phone: bool = True
    use_gr_x_timbre: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "up_ratios", tuple(self.up_ratios))
        _positive(self, ("in_channels", "upsample_initial_channel", "ngf", "vq_num_q_c", "vq_num_q_p",
                         "vq_dim", "codebook_dim", "codebook_size_prosody", "codebook_size_content",
                         "codebook_size_residual"))
        if isinstance(self.vq_num_q_r, bool) or not isinstance(self.vq_num_q_r, int) or self.vq_num_q_r < 0:
            raise ConfigError(f"FACodecDecoderConfig.vq_num_q_r must be an integer >= 0, got {self.vq_num_q_r!r}")
        _ratios(self)
        if self.upsample_initial_channel % 2 ** len(self.up_ratios):
            raise ConfigError(
                f"decoder upsample_initial_channel {self.upsample_initial_channel} must be divisible by "
                f"2**len(up_ratios) = {2 ** len(self.up_ratios)} (each block halves the width)"
            )
        if self.vq_dim != self.in_channels:
            raise ConfigError(
                f"decoder vq_dim ({self.vq_dim}) must equal in_channels ({self.in_channels}): the quantisers "
                "project the decoder input (the reference class defaults 256 / 1024 do not fit each other)"
            )

    @property
    def hop_length(self) -> int:
        return math.prod(self.up_ratios)

    @property
    def num_codebooks(self) -> int:
        return self.vq_num_q_p + self.vq_num_q_c + self.vq_num_q_r


@dataclass(frozen=True)
class TimbreEncoderConfig:
    encoder_layer: int = 4
    encoder_hidden: int = 256
    encoder_head: int = 4
    conv_filter_size: int = 1024
    conv_kernel_size: int = 5

    def __post_init__(self) -> None:
        _positive(self, tuple(f.name for f in fields(self)))
        if self.encoder_hidden % self.encoder_head:
            raise ConfigError(
                f"timbre encoder_hidden {self.encoder_hidden} is not divisible by encoder_head {self.encoder_head}"
            )
        if self.conv_kernel_size % 2 == 0:
            raise ConfigError("timbre conv_kernel_size must be odd (padding k // 2 keeps the length)")


@dataclass(frozen=True)
class FACodecConfig:
    encoder: FACodecEncoderConfig = field(default_factory=FACodecEncoderConfig)
    decoder: FACodecDecoderConfig = field(default_factory=FACodecDecoderConfig)
    timbre_encoder: TimbreEncoderConfig = field(default_factory=TimbreEncoderConfig)

    def __post_init__(self) -> None:
        widths = {
            "encoder out_channels": self.encoder.out_channels,
            "decoder in_channels": self.decoder.in_channels,
            "timbre encoder_hidden": self.timbre_encoder.encoder_hidden,
        }
        if len(set(widths.values())) != 1:
            raise ConfigError(f"FACodec widths must agree: {widths}")
        if self.encoder.hop_length != self.decoder.hop_length:
            raise ConfigError(
                f"encoder hop (prod {list(self.encoder.up_ratios)} = {self.encoder.hop_length}) differs from "
                f"the decoder hop (prod {list(self.decoder.up_ratios)} = {self.decoder.hop_length})"
            )

    @property
    def hop_length(self) -> int:
        """Samples per code frame (200 officially: 80 frames/s at 16 kHz)."""
        return self.encoder.hop_length

    @property
    def width(self) -> int:
        """Latent / timbre vector width (256 officially)."""
        return self.decoder.in_channels


def _positive(obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{type(obj).__name__}.{name} must be a positive integer, got {value!r}")


def _ratios(obj: Any) -> None:
    if not obj.up_ratios or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in obj.up_ratios):
        raise ConfigError(f"{type(obj).__name__}.up_ratios must be positive integers, got {list(obj.up_ratios)}")


# ---------------------------------------------------------------------------------------------
# Parsing (kwargs dicts -> dataclasses)
# ---------------------------------------------------------------------------------------------


def _coerce(value: Any, like: Any, where: str) -> Any:
    """``value`` converted to the type of the default ``like`` (JSON has no tuples; 4.0 is 4)."""
    if isinstance(like, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(like, int):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return int(value)
    if isinstance(like, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list of integers, got {value!r}")
        return tuple(_coerce(v, 0, f"{where}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"no coercion for {type(like).__name__}")  # pragma: no cover - table bug


def _kwargs(section: Any, name: str, ignored: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Constructor kwargs of one module: given keys over the reference class defaults."""
    if not isinstance(section, dict):
        raise ConfigError(f"FACodec config: {name!r} must be an object, got {type(section).__name__}")
    defaults = REFERENCE_CLASS_DEFAULTS[name]
    unknown = sorted(k for k in section if k not in defaults and k not in ignored and not k.startswith("_"))
    if unknown:
        raise ConfigError(f"FACodec config: unknown {name} arguments {unknown}")
    return {
        key: _coerce(section.get(key, default), default, f"FACodec config: {name}.{key}")
        for key, default in defaults.items()
    }


def parse_facodec_config(raw: dict) -> FACodecConfig:
    """FACodec config from ``{"encoder": kwargs, "decoder": kwargs[, "timbre_encoder": sizes]}``.

    Missing keys take the reference class defaults; keys starting with ``_`` are notes and ignored.
    """
    if not isinstance(raw, dict) or "encoder" not in raw or "decoder" not in raw:
        raise ConfigError("FACodec config: expected an object with 'encoder' and 'decoder' kwargs")
    extra = sorted(k for k in raw if k not in ("encoder", "decoder", "timbre_encoder") and not k.startswith("_"))
    if extra:
        raise ConfigError(f"FACodec config: unknown sections {extra}")
    return FACodecConfig(
        encoder=FACodecEncoderConfig(**_kwargs(raw["encoder"], "encoder")),
        decoder=FACodecDecoderConfig(**_kwargs(raw["decoder"], "decoder", _TRAINING_ONLY_DECODER_ARGS)),
        timbre_encoder=TimbreEncoderConfig(**_kwargs(raw.get("timbre_encoder", {}), "timbre_encoder")),
    )


def read_facodec_config(path: str | Path) -> FACodecConfig:
    return parse_facodec_config(read_json(path))


def official_facodec_config() -> FACodecConfig:
    """The README construction: the only configuration that loads ``amphion/naturalspeech3_facodec``."""
    return parse_facodec_config(OFFICIAL_FACODEC_KWARGS)


def tiny_facodec_config() -> FACodecConfig:
    """Small enough for CPU tests and the tiny app profile, with the official interface: hop 200
    (80 frames/s at 16 kHz), 1 + 2 + 3 codebooks of 1024 codes, the same training-only flags."""
    return parse_facodec_config({
        "encoder": {"ngf": 4, "up_ratios": [2, 4, 5, 5], "out_channels": 16},
        "decoder": {
            **OFFICIAL_FACODEC_KWARGS["decoder"],
            "in_channels": 16,
            "upsample_initial_channel": 32,
            "ngf": 4,
            "vq_dim": 16,
            "codebook_dim": 4,
        },
        "timbre_encoder": {
            "encoder_layer": 2,
            "encoder_hidden": 16,
            "encoder_head": 4,
            "conv_filter_size": 32,
            "conv_kernel_size": 5,
        },
    })


def training_only_prefixes(config: FACodecDecoderConfig) -> tuple[str, ...]:
    """State-dict prefixes of the decoder's training-only heads, as the reference builds them.

    ``f0_predictor`` and ``phone_predictor`` always exist; the gradient-reversal heads exist when
    their flag is on (the residual ones only with residual codebooks). None is used by encoding,
    ``vq2emb`` or ``inference``, so the loader drops them.
    """
    prefixes = ["f0_predictor.", "phone_predictor."]
    if config.vq_num_q_r > 0 and config.use_gr_residual_f0:
        prefixes.append("res_f0_predictor.")
    if config.vq_num_q_r > 0 and config.use_gr_residual_phone:
        prefixes.append("res_phone_predictor.")
    if config.use_gr_content_f0:
        prefixes.append("content_f0_predictor.")
    if config.use_gr_prosody_phone:
        prefixes.append("prosody_phone_predictor.")
    if config.use_gr_x_timbre:
        prefixes.append("x_timbre_predictor.")
    return tuple(prefixes)

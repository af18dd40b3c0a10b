"""Configurations of MaskGCT's two codecs, parsed from the reference's ``maskgct.json`` shape.

The parsers take a section (``model.semantic_codec``, ``model.acoustic_codec``), the ``model``
object or the whole file, and apply the reference's reading rules (see ``models/maskgct/README.md``);
a configuration that does not describe a supported codec is a :class:`ConfigError`.
:data:`OFFICIAL_MASKGCT_CODECS` holds the official sections.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from models.core.configs import ConfigError, read_json

__all__ = [
    "AcousticCodecConfig",
    "AcousticDecoderConfig",
    "AcousticEncoderConfig",
    "ConfigError",
    "OFFICIAL_MASKGCT_CODECS",
    "SemanticCodecConfig",
    "acoustic_codec_to_reference",
    "official_acoustic_codec_config",
    "official_semantic_codec_config",
    "parse_acoustic_codec_config",
    "parse_acoustic_decoder_config",
    "parse_acoustic_encoder_config",
    "parse_semantic_codec_config",
    "read_codec_config",
    "semantic_codec_to_reference",
    "tiny_acoustic_codec_config",
    "tiny_semantic_codec_config",
]

# The codec sections of Amphion's models/tts/maskgct/config/maskgct.json (commit d3de90f), verbatim
# values, including the misspelt "in_channel" and the keys only training reads.
OFFICIAL_MASKGCT_CODECS: dict[str, Any] = {
    "semantic_codec": {
        "codebook_size": 8192,
        "hidden_size": 1024,
        "codebook_dim": 8,
        "vocos_dim": 384,
        "vocos_intermediate_dim": 2048,
        "vocos_num_layers": 12,
    },
    "acoustic_codec": {
        "encoder": {"d_model": 96, "up_ratios": [3, 4, 5, 8], "out_channels": 256, "use_tanh": False},
        "decoder": {
            "in_channel": 256,
            "upsample_initial_channel": 1536,
            "up_ratios": [8, 5, 4, 3],
            "num_quantizers": 12,
            "codebook_size": 1024,
            "codebook_dim": 8,
            "quantizer_type": "fvq",
            "quantizer_dropout": 0.5,
            "commitment": 0.25,
            "codebook_loss_weight": 1.0,
            "use_l2_normlize": True,
            "codebook_type": "euclidean",
            "kmeans_init": False,
            "kmeans_iters": 10,
            "decay": 0.8,
            "eps": 0.5,
            "threshold_ema_dead_code": 2,
            "weight_init": False,
            "use_vocos": True,
            "vocos_dim": 512,
            "vocos_intermediate_dim": 4096,
            "vocos_num_layers": 30,
            "n_fft": 1920,
            "hop_size": 480,
            "padding": "same",
        },
    },
}

# Sample rates of the official pipeline (not in the config: hard-coded in maskgct_inference).
SEMANTIC_SAMPLE_RATE = 16000
ACOUSTIC_SAMPLE_RATE = 24000


# ---------------------------------------------------------------------------------------------
# Dataclasses
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SemanticCodecConfig:
    """RepCodec. ``hidden_size`` is the feature width (w2v-bert-2.0: 1024)."""

    codebook_size: int = 8192
    hidden_size: int = 1024
    codebook_dim: int = 8
    vocos_dim: int = 384
    vocos_intermediate_dim: int = 2048
    vocos_num_layers: int = 12
    num_quantizers: int = 1
    # >1 adds the reference's unused ``down`` / ``up`` convs (so such checkpoints load strictly).
    downsample_scale: int = 1

    def __post_init__(self) -> None:
        _positive(self, ("codebook_size", "hidden_size", "codebook_dim", "vocos_dim",
                         "vocos_intermediate_dim", "vocos_num_layers", "num_quantizers"))


@dataclass(frozen=True)
class AcousticEncoderConfig:
    d_model: int = 96
    up_ratios: tuple[int, ...] = (3, 4, 5, 8)
    out_channels: int = 256
    use_tanh: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "up_ratios", tuple(int(r) for r in self.up_ratios))
        _positive(self, ("d_model", "out_channels"))
        if not self.up_ratios or min(self.up_ratios) < 1:
            raise ConfigError(f"encoder up_ratios must be positive integers, got {list(self.up_ratios)}")

    @property
    def hop_length(self) -> int:
        """Samples per latent frame (the product of the strides)."""
        return math.prod(self.up_ratios)

    @property
    def width(self) -> int:
        """Channels before the last conv (``d_model`` doubled once per stride)."""
        return self.d_model * 2 ** len(self.up_ratios)


@dataclass(frozen=True)
class AcousticDecoderConfig:
    in_channels: int = 256
    num_quantizers: int = 12
    codebook_size: int = 1024
    codebook_dim: int = 8
    use_l2_normalize: bool = True
    vocos_dim: int = 512
    vocos_intermediate_dim: int = 4096
    vocos_num_layers: int = 30
    n_fft: int = 1920
    hop_size: int = 480
    padding: str = "same"

    def __post_init__(self) -> None:
        _positive(self, ("in_channels", "num_quantizers", "codebook_size", "codebook_dim", "vocos_dim",
                         "vocos_intermediate_dim", "vocos_num_layers", "n_fft", "hop_size"))
        if self.padding not in ("same", "center"):
            raise ConfigError(f"decoder padding must be 'same' or 'center', got {self.padding!r}")
        if self.hop_size > self.n_fft:
            raise ConfigError(f"decoder hop_size {self.hop_size} exceeds n_fft {self.n_fft}")


@dataclass(frozen=True)
class AcousticCodecConfig:
    encoder: AcousticEncoderConfig
    decoder: AcousticDecoderConfig

    def __post_init__(self) -> None:
        if self.encoder.out_channels != self.decoder.in_channels:
            raise ConfigError(
                f"encoder out_channels ({self.encoder.out_channels}) must equal the decoder input width "
                f"({self.decoder.in_channels}; read from 'in_channels', default 256 - the reference "
                "ignores the misspelt 'in_channel')"
            )
        if self.encoder.hop_length != self.decoder.hop_size:
            raise ConfigError(
                f"encoder hop (prod(up_ratios) = {self.encoder.hop_length}) differs from the decoder "
                f"hop_size ({self.decoder.hop_size}): codes would not map back to the input length"
            )

    @property
    def hop_length(self) -> int:
        return self.decoder.hop_size


def _positive(obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{type(obj).__name__}.{name} must be a positive integer, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def _section(raw: dict, name: str, marker_keys: tuple[str, ...]) -> dict:
    """The ``name`` section of ``raw``: raw itself, ``raw[name]`` or ``raw["model"][name]``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: expected a JSON object, got {type(raw).__name__}")
    model = raw.get("model")
    for candidate in (raw, raw.get(name), model.get(name) if isinstance(model, dict) else None):
        if isinstance(candidate, dict) and any(k in candidate for k in marker_keys):
            return candidate
    raise ConfigError(
        f"{name}: no configuration found (expected the section itself, or 'model.{name}' as in maskgct.json)"
    )


def _int(d: dict, key: str, default: Any, where: str) -> int:
    value = d.get(key, default)
    if value is None:
        raise ConfigError(f"{where}: missing required key {key!r}")
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ConfigError(f"{where}: {key!r} must be an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {key!r} must be an integer, got {value!r}") from exc


def _bool(d: dict, key: str, default: Any, where: str) -> bool:
    value = d.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key!r} must be true or false, got {value!r}")
    return value


def parse_semantic_codec_config(raw: dict) -> SemanticCodecConfig:
    """RepCodec config from ``model.semantic_codec`` (or the section itself)."""
    where = "semantic_codec config"
    d = _section(raw, "semantic_codec", ("codebook_size", "hidden_size", "vocos_dim", "codebook_dim"))
    defaults = SemanticCodecConfig()
    if "vocos_dim" in d:
        missing = [k for k in ("vocos_intermediate_dim", "vocos_num_layers") if k not in d]
        if missing:
            raise ConfigError(f"{where}: 'vocos_dim' is given without {missing} (the reference needs both then)")
        inter, layers = d["vocos_intermediate_dim"], d["vocos_num_layers"]
    else:
        inter, layers = defaults.vocos_intermediate_dim, defaults.vocos_num_layers
    return SemanticCodecConfig(
        codebook_size=_int(d, "codebook_size", defaults.codebook_size, where),
        hidden_size=_int(d, "hidden_size", defaults.hidden_size, where),
        codebook_dim=_int(d, "codebook_dim", defaults.codebook_dim, where),
        vocos_dim=_int(d, "vocos_dim", defaults.vocos_dim, where),
        vocos_intermediate_dim=_int({"v": inter}, "v", None, where),
        vocos_num_layers=_int({"v": layers}, "v", None, where),
        num_quantizers=_int(d, "num_quantizers", defaults.num_quantizers, where),
        downsample_scale=_int(d, "downsample_scale", 1, where) if d.get("downsample_scale") is not None else 1,
    )


def _parse_encoder(d: dict) -> AcousticEncoderConfig:
    where = "acoustic_codec.encoder config"
    for key in ("d_model", "up_ratios", "out_channels", "use_tanh"):
        if key not in d:
            raise ConfigError(f"{where}: missing required key {key!r}")
    ratios = d["up_ratios"]
    if not isinstance(ratios, (list, tuple)) or not ratios:
        raise ConfigError(f"{where}: 'up_ratios' must be a non-empty list, got {ratios!r}")
    return AcousticEncoderConfig(
        d_model=_int(d, "d_model", None, where),
        up_ratios=tuple(_int({"r": r}, "r", None, where) for r in ratios),
        out_channels=_int(d, "out_channels", None, where),
        use_tanh=_bool(d, "use_tanh", None, where),
    )


def _parse_decoder(d: dict) -> AcousticDecoderConfig:
    where = "acoustic_codec.decoder config"
    quantizer_type = d.get("quantizer_type", "vq")
    if quantizer_type != "fvq":
        raise ConfigError(f"{where}: quantizer_type {quantizer_type!r} is not supported (MaskGCT uses 'fvq')")
    if not _bool(d, "use_vocos", False, where):
        raise ConfigError(f"{where}: only the Vocos decoder (use_vocos: true, as in MaskGCT) is supported")
    padding = d.get("padding", "same")
    if padding not in ("same", "center"):
        raise ConfigError(f"{where}: padding must be 'same' or 'center', got {padding!r}")
    return AcousticDecoderConfig(
        in_channels=_int(d, "in_channels", 256, where),  # never "in_channel": see the module docstring
        num_quantizers=_int(d, "num_quantizers", 8, where),
        codebook_size=_int(d, "codebook_size", 1024, where),
        codebook_dim=_int(d, "codebook_dim", 256, where),
        use_l2_normalize=_bool(d, "use_l2_normlize", False, where),
        vocos_dim=_int(d, "vocos_dim", 384, where),
        vocos_intermediate_dim=_int(d, "vocos_intermediate_dim", 1152, where),
        vocos_num_layers=_int(d, "vocos_num_layers", 8, where),
        n_fft=_int(d, "n_fft", 800, where),
        hop_size=_int(d, "hop_size", 200, where),
        padding=padding,
    )


def parse_acoustic_encoder_config(raw: dict) -> AcousticEncoderConfig:
    """CodecEncoder config from ``model.acoustic_codec.encoder``, the ``acoustic_codec`` object or the section."""
    if isinstance(raw, dict) and "d_model" in raw:
        return _parse_encoder(raw)
    return _parse_encoder(_encoder_decoder(raw)[0])


def parse_acoustic_decoder_config(raw: dict) -> AcousticDecoderConfig:
    """CodecDecoder config from ``model.acoustic_codec.decoder``, the ``acoustic_codec`` object or the section."""
    if isinstance(raw, dict) and ("quantizer_type" in raw or "use_vocos" in raw or "num_quantizers" in raw):
        return _parse_decoder(raw)
    return _parse_decoder(_encoder_decoder(raw)[1])


def _encoder_decoder(raw: dict) -> tuple[dict, dict]:
    d = _section(raw, "acoustic_codec", ("encoder", "decoder"))
    enc, dec = d.get("encoder"), d.get("decoder")
    if not isinstance(enc, dict) or not isinstance(dec, dict):
        raise ConfigError("acoustic_codec config: needs both an 'encoder' and a 'decoder' object")
    return enc, dec


def parse_acoustic_codec_config(raw: dict) -> AcousticCodecConfig:
    """Encoder + decoder config from ``model.acoustic_codec`` (or that object itself)."""
    enc, dec = _encoder_decoder(raw)
    return AcousticCodecConfig(_parse_encoder(enc), _parse_decoder(dec))


def read_codec_config(path: str | Path) -> dict:
    """A JSON / json5 config file (Amphion writes comments and trailing commas) as a dict."""
    return read_json(path)


# ---------------------------------------------------------------------------------------------
# Official and tiny profiles
# ---------------------------------------------------------------------------------------------


def official_semantic_codec_config() -> SemanticCodecConfig:
    return parse_semantic_codec_config(copy.deepcopy(OFFICIAL_MASKGCT_CODECS))


def official_acoustic_codec_config() -> AcousticCodecConfig:
    return parse_acoustic_codec_config(copy.deepcopy(OFFICIAL_MASKGCT_CODECS))


def tiny_semantic_codec_config() -> SemanticCodecConfig:
    """Same structure as the official RepCodec, small widths (fast on CPU; for tests and dev mode)."""
    return SemanticCodecConfig(
        codebook_size=1024, hidden_size=32, codebook_dim=4, vocos_dim=16, vocos_intermediate_dim=32, vocos_num_layers=2
    )


def tiny_acoustic_codec_config() -> AcousticCodecConfig:
    """Same structure and I/O contract as the official codec (256-d latent, 24 kHz, hop 480 -> 50 Hz),
    small widths: 3 quantizers of 1024 codes, 2 ConvNeXt layers of width 16."""
    return AcousticCodecConfig(
        encoder=AcousticEncoderConfig(d_model=2, up_ratios=(3, 4, 5, 8), out_channels=256, use_tanh=False),
        decoder=AcousticDecoderConfig(
            in_channels=256, num_quantizers=3, codebook_size=1024, codebook_dim=4, use_l2_normalize=True,
            vocos_dim=16, vocos_intermediate_dim=32, vocos_num_layers=2, n_fft=1920, hop_size=480, padding="same",
        ),
    )


def semantic_codec_to_reference(config: SemanticCodecConfig) -> dict:
    """The ``semantic_codec`` section the reference would read back as ``config``."""
    out = asdict(config)
    if out["downsample_scale"] == 1:
        del out["downsample_scale"]
    return out


def acoustic_codec_to_reference(config: AcousticCodecConfig) -> dict:
    """The ``acoustic_codec`` section (encoder + decoder) the reference would read back as ``config``."""
    enc = asdict(config.encoder)
    enc["up_ratios"] = list(enc["up_ratios"])
    dec = asdict(config.decoder)
    dec["use_l2_normlize"] = dec.pop("use_l2_normalize")
    dec.update(quantizer_type="fvq", use_vocos=True)
    return {"encoder": enc, "decoder": dec}

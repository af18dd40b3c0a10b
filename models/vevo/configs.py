"""Configurations of Vevo's front ends, tokenizers and vocoder, parsed from the official files.

The official values are written out here (:data:`OFFICIAL_VOCODER_JSON`,
:data:`OFFICIAL_CONTENT_TOKENIZER_YAML`, :data:`OFFICIAL_CONTENTSTYLE_REPCODEC`), since Amphion keeps
them in its code repository, not with the weights. ``parse_*`` apply the reference's reading rules
(see ``models/vevo/README.md``); a configuration they cannot use is a :class:`ConfigError`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields
from typing import Any

from models.audio.mel import MelConfig
from models.core.configs import ConfigError, read_json
# Vevo's content-style tokenizer is MaskGCT's semantic codec (RepCodec): its config.
from models.maskgct.configs import SemanticCodecConfig, parse_semantic_codec_config

__all__ = [
    "OFFICIAL_CONTENT_TOKENIZER_YAML",
    "OFFICIAL_CONTENTSTYLE_REPCODEC",
    "OFFICIAL_VOCODER_JSON",
    "ConfigError",
    "ContentTokenizerConfig",
    "VevoMelConfig",
    "VocosVocoderConfig",
    "official_content_tokenizer_config",
    "official_contentstyle_tokenizer_config",
    "official_mel_config",
    "official_vocoder_config",
    "parse_content_tokenizer_config",
    "parse_contentstyle_tokenizer_config",
    "parse_mel_config",
    "parse_vocoder_config",
]

# models/vc/vevo/config/Vocoder.json without the discriminator blocks (period_gan, spec_gan) and the
# dataset bookkeeping, which inference never reads.
OFFICIAL_VOCODER_JSON: dict[str, Any] = {
    "model_type": "Vocoder",
    "preprocess": {
        "hop_size": 480,
        "sample_rate": 24000,
        "max_length": 36000,
        "n_fft": 1920,
        "num_mels": 128,
        "win_size": 1920,
        "fmin": 0,
        "fmax": 12000,
        "mel_var": 8.14,
        "mel_mean": -4.92,
    },
    "model": {
        "vocos": {
            "input_channels": 128,
            "dim": 1024,
            "intermediate_dim": 4096,
            "num_layers": 30,
            "n_fft": 1920,
            "hop_size": 480,
            "padding": "same",
        },
    },
}

# models/vc/vevo/config/hubert_large_l18_c32.yaml, verbatim.
OFFICIAL_CONTENT_TOKENIZER_YAML: dict[str, Any] = {
    "bias": True,
    "code_dim": 1024,
    "codebook_num": 1,
    "codebook_size": 32,
    "dec_block_dilations": [1, 1],
    "dec_block_kernel_size": 3,
    "dec_kernel_size": 3,
    "dec_ratios": [1, 1],
    "dec_strides": [1, 1],
    "decode_channels": 1024,
    "enc_block_dilations": [1, 1],
    "enc_block_kernel_size": 3,
    "enc_kernel_size": 3,
    "enc_ratios": [1, 1],
    "enc_strides": [1, 1],
    "encode_channels": 1024,
    "input_channels": 1024,
    "output_channels": 1024,
}

# models/vc/vevo/config/Vq8192ToMels.json, model.repcodec.
OFFICIAL_CONTENTSTYLE_REPCODEC: dict[str, Any] = {
    "codebook_size": 8192,
    "hidden_size": 1024,
    "codebook_dim": 8,
    "vocos_dim": 384,
    "vocos_intermediate_dim": 2048,
    "vocos_num_layers": 12,
}


# ---------------------------------------------------------------------------------------------
# Dataclasses
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VevoMelConfig:
    """The mel front end of the FM prompt and the vocoder, and its normalisation."""

    sample_rate: int = 24000
    n_fft: int = 1920
    hop_size: int = 480
    win_size: int = 1920
    num_mels: int = 128
    fmin: float = 0.0
    fmax: float = 12000.0
    mel_mean: float = -4.92
    mel_var: float = 8.14

    def __post_init__(self) -> None:
        _positive(self, ("sample_rate", "n_fft", "hop_size", "win_size", "num_mels"))
        if self.win_size > self.n_fft:
            raise ConfigError(f"win_size {self.win_size} exceeds n_fft {self.n_fft}")
        if not self.mel_var > 0:
            raise ConfigError(f"mel_var must be positive, got {self.mel_var}")

    @property
    def mel(self) -> MelConfig:
        """The shared log-mel recipe (models/audio/mel.py) with these values."""
        return MelConfig(
            sample_rate=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_size,
            win_length=self.win_size, n_mels=self.num_mels, fmin=float(self.fmin), fmax=float(self.fmax),
        )

    @property
    def mel_std(self) -> float:
        return math.sqrt(self.mel_var)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_size


@dataclass(frozen=True)
class VocosVocoderConfig:
    """Amphion's ``Vocos`` (``models/codec/amphion_codec/vocos.py``); defaults are its constructor's."""

    input_channels: int = 256
    dim: int = 384
    intermediate_dim: int = 1152
    num_layers: int = 8
    n_fft: int = 800
    hop_size: int = 200
    padding: str = "same"

    def __post_init__(self) -> None:
        _positive(self, ("input_channels", "dim", "intermediate_dim", "num_layers", "n_fft", "hop_size"))
        if self.padding not in ("same", "center"):
            raise ConfigError(f"vocos padding must be 'same' or 'center', got {self.padding!r}")
        if self.hop_size > self.n_fft:
            raise ConfigError(f"vocos hop_size {self.hop_size} exceeds n_fft {self.n_fft}")


@dataclass(frozen=True)
class ContentTokenizerConfig:
    """``VevoRepCodec(**yaml)``; field names and defaults are the constructor's."""

    input_channels: int = 768
    output_channels: int = 768
    encode_channels: int = 768
    decode_channels: int = 768
    code_dim: int = 768
    codebook_num: int = 1
    codebook_size: int = 1024
    bias: bool = True
    enc_ratios: tuple[float, ...] = (1, 1)
    dec_ratios: tuple[float, ...] = (1, 1)
    enc_strides: tuple[int, ...] = (1, 1)
    dec_strides: tuple[int, ...] = (1, 1)
    enc_kernel_size: int = 3
    dec_kernel_size: int = 3
    enc_block_dilations: tuple[int, ...] = (1, 1)
    enc_block_kernel_size: int = 3
    dec_block_dilations: tuple[int, ...] = (1, 1)
    dec_block_kernel_size: int = 3

    def __post_init__(self) -> None:
        for name in ("enc_ratios", "dec_ratios", "enc_strides", "dec_strides", "enc_block_dilations",
                     "dec_block_dilations"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _positive(self, ("input_channels", "output_channels", "encode_channels", "decode_channels", "code_dim",
                         "codebook_num", "codebook_size", "enc_kernel_size", "dec_kernel_size",
                         "enc_block_kernel_size", "dec_block_kernel_size"))
        if len(self.enc_ratios) != len(self.enc_strides) or len(self.dec_ratios) != len(self.dec_strides):
            raise ConfigError("VevoRepCodec: *_ratios and *_strides must have the same length (the reference asserts it)")
        if not self.enc_strides or not self.dec_strides:
            raise ConfigError("VevoRepCodec: needs at least one encoder and one decoder block")
        for name in ("enc_block_dilations", "dec_block_dilations"):
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in getattr(self, name)):
                raise ConfigError(f"VevoRepCodec: {name} must be positive integers, got {list(getattr(self, name))}")
        if any(s != 1 for s in self.enc_strides + self.dec_strides):
            # Strided variants exist in the reference class but no Vevo checkpoint uses them; the token
            # path (codes at the feature rate, masks from feature lengths) assumes stride 1.
            raise ConfigError(f"VevoRepCodec: only stride-1 blocks are supported (as in the official tokenizer), "
                              f"got enc_strides {list(self.enc_strides)}, dec_strides {list(self.dec_strides)}")


def _positive(obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{type(obj).__name__}.{name} must be a positive integer, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def _block(raw: dict, path: tuple[str, ...], markers: tuple[str, ...], where: str) -> dict:
    """``raw`` itself when it holds one of ``markers``, else the nested block at ``path``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    if any(k in raw for k in markers):
        return raw
    node: Any = raw
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        return node
    raise ConfigError(f"{where}: no configuration found (expected the block itself or '{'.'.join(path)}')")


def _number(d: dict, key: str, where: str, *, default: Any = None, integer: bool = False) -> Any:
    value = d.get(key, default)
    if value is None:
        raise ConfigError(f"{where}: missing required key {key!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {key!r} must be a number, got {value!r}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{where}: {key!r} must be an integer, got {value!r}")
        return int(value)
    return float(value)


def parse_mel_config(raw: dict) -> VevoMelConfig:
    """Mel settings from the ``preprocess`` block of ``Vocoder.json`` / ``vocoder.json`` (or the block)."""
    where = "vocoder preprocess config"
    d = _block(raw, ("preprocess",), ("n_fft", "num_mels", "hop_size"), where)
    return VevoMelConfig(
        sample_rate=_number(d, "sample_rate", where, integer=True),
        n_fft=_number(d, "n_fft", where, integer=True),
        hop_size=_number(d, "hop_size", where, integer=True),
        win_size=_number(d, "win_size", where, integer=True),
        num_mels=_number(d, "num_mels", where, integer=True),
        fmin=_number(d, "fmin", where),
        fmax=_number(d, "fmax", where),
        mel_mean=_number(d, "mel_mean", where),
        mel_var=_number(d, "mel_var", where),
    )


def parse_vocoder_config(raw: dict) -> VocosVocoderConfig:
    """The ``model.vocos`` block of ``Vocoder.json`` (or the block itself)."""
    where = "vocos config"
    d = _block(raw, ("model", "vocos"), ("dim", "intermediate_dim", "input_channels"), where)
    if d.get("adanorm_num_embeddings"):
        raise ConfigError(f"{where}: adaptive LayerNorm (adanorm_num_embeddings) is not used by Vevo's vocoder")
    defaults = VocosVocoderConfig()
    padding = d.get("padding", defaults.padding)
    if not isinstance(padding, str):
        raise ConfigError(f"{where}: 'padding' must be a string, got {padding!r}")
    return VocosVocoderConfig(
        **{f.name: _number(d, f.name, where, default=getattr(defaults, f.name), integer=True)
           for f in fields(VocosVocoderConfig) if f.name != "padding"},
        padding=padding,
    )


def parse_content_tokenizer_config(raw: dict) -> ContentTokenizerConfig:
    """``VevoRepCodec`` arguments from ``hubert_large_l18_c32.yaml`` (already read into a dict)."""
    where = "vq32 content tokenizer config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in fields(ContentTokenizerConfig)}
    unknown = sorted(set(raw) - set(known))
    if unknown:  # VevoRepCodec(**conf) would raise a TypeError on them
        raise ConfigError(f"{where}: unknown keys {unknown}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "bias":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: 'bias' must be true or false, got {value!r}")
            values[name] = value
        elif isinstance(value, (list, tuple)):
            if name not in ("enc_ratios", "dec_ratios", "enc_strides", "dec_strides", "enc_block_dilations",
                            "dec_block_dilations"):
                raise ConfigError(f"{where}: {name!r} must be a number, got {value!r}")
            integer = "ratios" not in name  # channel ratios may be fractional (int(channels * ratio))
            values[name] = tuple(_number({"v": v}, "v", f"{where} {name}", integer=integer) for v in value)
        else:
            values[name] = _number(raw, name, where, integer=True)
    return ContentTokenizerConfig(**values)


def parse_contentstyle_tokenizer_config(raw: dict) -> SemanticCodecConfig:
    """The vq8192 RepCodec from ``model.repcodec`` (FM config), ``model.output_repcodec`` (AR configs) or the
    block itself; read with the RepCodec rules of MaskGCT's semantic codec (same class in the reference)."""
    markers = ("codebook_size", "hidden_size", "vocos_dim", "codebook_dim")
    if isinstance(raw, dict) and any(k in raw for k in markers):
        return parse_semantic_codec_config(raw)
    model = raw.get("model") if isinstance(raw, dict) else None
    model = model if isinstance(model, dict) else {}
    d = model.get("repcodec", model.get("output_repcodec"))
    if not isinstance(d, dict):
        raise ConfigError("content-style tokenizer config: no 'model.repcodec' (or 'model.output_repcodec') block")
    return parse_semantic_codec_config(d)


# ---------------------------------------------------------------------------------------------
# Official profiles
# ---------------------------------------------------------------------------------------------


def official_mel_config() -> VevoMelConfig:
    return parse_mel_config(copy.deepcopy(OFFICIAL_VOCODER_JSON))


def official_vocoder_config() -> VocosVocoderConfig:
    return parse_vocoder_config(copy.deepcopy(OFFICIAL_VOCODER_JSON))


def official_content_tokenizer_config() -> ContentTokenizerConfig:
    return parse_content_tokenizer_config(copy.deepcopy(OFFICIAL_CONTENT_TOKENIZER_YAML))


def official_contentstyle_tokenizer_config() -> SemanticCodecConfig:
    return parse_contentstyle_tokenizer_config(copy.deepcopy(OFFICIAL_CONTENTSTYLE_REPCODEC))

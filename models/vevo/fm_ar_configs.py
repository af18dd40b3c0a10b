"""Configurations of the Vevo / Vevo1.5 (VevoSing) AR content-style and flow-matching transformers,
and the AR's length limits.

:data:`OFFICIAL_CHECKPOINTS` holds every released checkpoint's weights file and configuration, so the
service needs no config file; ``parse_*`` read Amphion's json5 files (the whole file, its ``model``
object or the section; :func:`read_config_file`), ``tiny_*`` give the small profiles.
:class:`ARLimits` is carried by :class:`VevoARConfig` (``limits``) and Vevo1.5's cap by
:class:`VevoSingARConfig` (``length_bound``): the tiny configs carry the tiny ones, official and
parsed configs the reference's. Where the files live and what is fixed in Amphion's code:
``models/vevo/README.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from models.core.configs import loads_lenient

__all__ = [
    "AR_LIMITS",
    "AR_SPARE_SLOTS",
    "OFFICIAL_CHECKPOINTS",
    "TINY_AR_LENGTH_BOUND",
    "TINY_AR_LIMITS",
    "ARConfig",
    "ARLimits",
    "FMConfig",
    "FM_FAMILIES",
    "LlamaSize",
    "OfficialCheckpoint",
    "VevoARConfig",
    "VevoConfigError",
    "VevoSingARConfig",
    "official_checkpoint",
    "parse_ar_config",
    "parse_fm_config",
    "read_config_file",
    "tiny_vevo_ar_config",
    "tiny_vevo_fm_config",
    "tiny_vevosing_ar_config",
    "tiny_vevosing_fm_config",
]

#: Extra vocabulary slots of both AR models ("for other special tokens during post-training").
AR_SPARE_SLOTS = 20
#: ``"vevo"``: models/vc FMT (codes at the mel rate, no resampling layers);
#: ``"vevosing"``: models/svc FMT (ConvTranspose resampling of the codes when cond_scale_factor > 1).
FM_FAMILIES = ("vevo", "vevosing")


class VevoConfigError(ValueError):
    """A configuration that does not describe a supported Vevo / Vevo1.5 model."""


# ---------------------------------------------------------------------------------------------
# Dataclasses
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ARLimits:
    """How long a Vevo AR may run, and over which ids it samples: a property of its weights.

    ``max_length``: the whole sequence, prompt included (the reference's HF ``max_length``).
    ``output_only``: sample output ids and the output EOS only. ``frames_per_source_frame`` /
    ``frames_per_phone``: when set, the new tokens are also capped at that many per 50 Hz source
    frame (VC) or per text phone (TTS)."""

    max_length: int = 2000
    output_only: bool = False
    frames_per_source_frame: float | None = None
    frames_per_phone: float | None = None


#: The reference's limits (official weights).
AR_LIMITS = ARLimits()
#: The tiny AR's: random weights practically never sample the output EOS, so one token per source
#: frame (tiny conversions keep the source's length), four per phone (80 ms), output ids only.
TINY_AR_LIMITS = ARLimits(output_only=True, frames_per_source_frame=1.0, frames_per_phone=4.0)
#: The tiny Vevo1.5 AR's cap on new tokens, per expected source token (same reason).
TINY_AR_LENGTH_BOUND = 1.0


@dataclass(frozen=True)
class LlamaSize:
    """Sizes of a causal Llama (``LlamaConfig`` fields the Amphion AR models set)."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        if min(self.hidden_size, self.intermediate_size, self.num_heads) < 1 or self.num_layers < 0:
            raise VevoConfigError(f"bad Llama sizes: {self}")
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 2:
            raise VevoConfigError(f"hidden_size {self.hidden_size} must split into num_heads {self.num_heads} "
                                  f"heads of even size (RoPE)")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass(frozen=True)
class VevoARConfig:
    """Vevo's AR (``models/vc/autoregressive_transformer``): one input stream, one output stream.

    ``input_vocab_size`` covers every input id the model accepts: for the joint VC+TTS model
    (``train_both_vc_and_tts``, Vq32ToVq8192) phone ids occupy [0, tts_input_vocab_size) and vq32 ids
    are shifted above them by the pipeline (:meth:`vc_input_ids_offset`); PhoneToVq8192 takes phone
    ids only.
    """

    llama: LlamaSize
    input_vocab_size: int
    output_vocab_size: int
    train_both_vc_and_tts: bool = False
    tts_input_vocab_size: int = 1024
    vc_input_vocab_size: int = 32
    #: How long generation may run with these weights (not part of Amphion's file).
    limits: ARLimits = AR_LIMITS

    def __post_init__(self) -> None:
        if min(self.input_vocab_size, self.output_vocab_size) < 1:
            raise VevoConfigError(f"vocabulary sizes must be >= 1: {self}")
        if self.train_both_vc_and_tts and self.tts_input_vocab_size + self.vc_input_vocab_size > self.input_vocab_size:
            raise VevoConfigError(f"tts_input_vocab_size {self.tts_input_vocab_size} + vc_input_vocab_size "
                                  f"{self.vc_input_vocab_size} exceed input_vocab_size {self.input_vocab_size}")

    @property
    def vocab_size(self) -> int:
        return self.input_vocab_size + self.output_vocab_size + AR_SPARE_SLOTS

    @property
    def vc_input_ids_offset(self) -> int:
        """What the pipeline adds to vq32 ids before the AR (``ar_input_ids += tts_input_vocab_size``
        when ``train_both_vc_and_tts``; 0 otherwise)."""
        return self.tts_input_vocab_size if self.train_both_vc_and_tts else 0


@dataclass(frozen=True)
class VevoSingARConfig:
    """Vevo1.5's AR (``models/svc/autoregressive_transformer``): content (phone) ids, optional style
    (prosody) ids, content-style output ids, each stream with its own BOS/EOS."""

    llama: LlamaSize
    content_vocab_size: int
    style_vocab_size: int
    content_style_vocab_size: int
    #: Cap on new tokens per expected source token (None: only the whole sequence's ``max_length``);
    #: not part of Amphion's file.
    length_bound: float | None = None

    def __post_init__(self) -> None:
        if min(self.content_vocab_size, self.style_vocab_size, self.content_style_vocab_size) < 1:
            raise VevoConfigError(f"vocabulary sizes must be >= 1: {self}")

    @property
    def vocab_size(self) -> int:
        return self.content_vocab_size + self.style_vocab_size + self.content_style_vocab_size + AR_SPARE_SLOTS


ARConfig = Union[VevoARConfig, VevoSingARConfig]


@dataclass(frozen=True)
class FMConfig:
    """``flow_matching_transformer`` section of a Vevo / Vevo1.5 FM config."""

    family: str                 # "vevo" or "vevosing" (see FM_FAMILIES)
    mel_dim: int
    hidden_size: int
    num_layers: int
    num_heads: int
    cond_codebook_size: int
    cond_scale_factor: int = 1  # vevosing: codes are upsampled by this (a power of 2); vevo: unused
    cfg_scale: float = 0.2      # training only (condition drop probability)
    sigma: float = 1e-5         # training only
    time_scheduler: str = "linear"  # training only

    def __post_init__(self) -> None:
        if self.family not in FM_FAMILIES:
            raise VevoConfigError(f"unknown FM family {self.family!r}; expected one of {FM_FAMILIES}")
        if min(self.mel_dim, self.hidden_size, self.num_heads, self.cond_codebook_size) < 1 or self.num_layers < 0:
            raise VevoConfigError(f"bad FM sizes: {self}")
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 2 or self.hidden_size < 4:
            raise VevoConfigError(f"hidden_size {self.hidden_size} must split into num_heads {self.num_heads} "
                                  f"heads of even size")
        if self.cond_scale_factor < 1 or (self.cond_scale_factor & (self.cond_scale_factor - 1)):
            raise VevoConfigError(f"cond_scale_factor must be a power of 2, got {self.cond_scale_factor}")

    @property
    def resampling_doublings(self) -> int:
        """Number of ConvTranspose1d(k4, s2, p1) + GELU pairs (only the vevosing family builds them)."""
        return int(math.log2(self.cond_scale_factor)) if self.family == "vevosing" else 0


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config JSON as Amphion writes them (json5-style comments and trailing commas accepted)."""
    path = Path(path)
    if not path.is_file():
        raise VevoConfigError(f"config file not found: {path}")
    data = loads_lenient(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise VevoConfigError(f"{path}: expected a JSON object at the top level")
    return data


def _model_and_section(obj: dict[str, Any], section: str, marker: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """``(model object, section object, where)`` from the whole file, its ``model`` or the section."""
    if marker in obj:
        return {}, obj, section
    model = obj.get("model", obj)
    if isinstance(model, dict) and isinstance(model.get(section), dict):
        return model, model[section], f"model.{section}"
    raise VevoConfigError(f"no model.{section} section found (top-level keys: {sorted(obj)[:10]}); expected the "
                          f"config file, its 'model' object, or the section itself")


def _get(d: dict[str, Any], key: str, where: str, kind: type, default: Any = ...) -> Any:
    if key not in d or d[key] is None:
        if default is ...:
            raise VevoConfigError(f"{where}: missing key {key!r}")
        return default
    value = d[key]
    if kind is bool:
        if not isinstance(value, bool):
            raise VevoConfigError(f"{where}.{key}: expected true/false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise VevoConfigError(f"{where}.{key}: expected an integer, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise VevoConfigError(f"{where}.{key}: expected a number, got {value!r}")
        return float(value)
    if not isinstance(value, kind):
        raise VevoConfigError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def _llama_size(sec: dict[str, Any], where: str) -> LlamaSize:
    return LlamaSize(
        hidden_size=_get(sec, "hidden_size", where, int),
        intermediate_size=_get(sec, "intermediate_size", where, int),
        num_layers=_get(sec, "num_hidden_layers", where, int),
        num_heads=_get(sec, "num_attention_heads", where, int),
    )


def parse_ar_config(obj: dict[str, Any]) -> ARConfig:
    """The AR configuration of a Vevo (``input_vocab_size``) or Vevo1.5 (``content_vocab_size``)
    config: the whole file, its ``model`` object or the ``autoregressive_transformer`` section
    (the VC/TTS flags of Vevo live in ``model``; given the section alone they take their defaults)."""
    model, sec, where = _model_and_section(obj, "autoregressive_transformer", "num_hidden_layers")
    if _get(sec, "use_global_style_encoder", where, bool, False):
        raise VevoConfigError(f"{where}.use_global_style_encoder: the global style encoder is not supported "
                              f"(no released checkpoint uses it)")
    llama = _llama_size(sec, where)
    if "content_vocab_size" in sec:
        return VevoSingARConfig(
            llama=llama,
            content_vocab_size=_get(sec, "content_vocab_size", where, int),
            style_vocab_size=_get(sec, "style_vocab_size", where, int),
            content_style_vocab_size=_get(sec, "content_style_vocab_size", where, int),
        )
    return VevoARConfig(
        llama=llama,
        input_vocab_size=_get(sec, "input_vocab_size", where, int),
        output_vocab_size=_get(sec, "output_vocab_size", where, int),
        train_both_vc_and_tts=_get(model, "train_both_vc_and_tts", "model", bool, False),
        tts_input_vocab_size=_get(model, "tts_input_vocab_size", "model", int, 1024),
        vc_input_vocab_size=_get(model, "vc_input_vocab_size", "model", int, 32),
    )


def parse_fm_config(obj: dict[str, Any], family: str) -> FMConfig:
    """The ``flow_matching_transformer`` of a Vevo (``family="vevo"``) or Vevo1.5 (``"vevosing"``)
    config. The family decides whether ``cond_scale_factor`` builds resampling layers: the Vevo class
    ignores it for token conditions, the Vevo1.5 class upsamples with it."""
    if family not in FM_FAMILIES:
        raise VevoConfigError(f"unknown FM family {family!r}; expected one of {FM_FAMILIES}")
    _, sec, where = _model_and_section(obj, "flow_matching_transformer", "mel_dim")
    if not _get(sec, "use_cond_code", where, bool, True):
        raise VevoConfigError(f"{where}.use_cond_code: only token conditions (true) are supported")
    for extra in ("repa", "ctc"):
        if extra in sec:
            raise VevoConfigError(f"{where}.{extra}: the training-only {extra} heads are not supported "
                                  f"(no released checkpoint has them)")
    return FMConfig(
        family=family,
        mel_dim=_get(sec, "mel_dim", where, int),
        hidden_size=_get(sec, "hidden_size", where, int),
        num_layers=_get(sec, "num_layers", where, int),
        num_heads=_get(sec, "num_heads", where, int),
        cond_codebook_size=_get(sec, "cond_codebook_size", where, int),
        cond_scale_factor=_get(sec, "cond_scale_factor", where, int, 1),
        cfg_scale=_get(sec, "cfg_scale", where, float, 0.2),
        sigma=_get(sec, "sigma", where, float, 1e-5),
        time_scheduler=_get(sec, "time_scheduler", where, str, "linear"),
    )


# ---------------------------------------------------------------------------------------------
# Official checkpoints
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One released AR or FM checkpoint: where its weights live and the configuration it needs."""

    repo_id: str
    weights_file: str           # path inside the HF repo
    amphion_config: str         # the config's path in open-mmlab/Amphion (for reference)
    config: ARConfig | FMConfig


_VEVO_FM = FMConfig(family="vevo", mel_dim=128, hidden_size=1024, num_layers=16, num_heads=16,
                    cond_codebook_size=8192, cond_scale_factor=1, cfg_scale=0.2, sigma=1e-5, time_scheduler="cos")
_VEVOSING_FM = FMConfig(family="vevosing", mel_dim=128, hidden_size=1024, num_layers=16, num_heads=16,
                        cond_codebook_size=16384, cond_scale_factor=4, cfg_scale=0.2, sigma=1e-5,
                        time_scheduler="cos")
_VEVOSING_AR = VevoSingARConfig(LlamaSize(1920, 7680, 12, 16), content_vocab_size=1024, style_vocab_size=512,
                                content_style_vocab_size=16384)

#: Official name (the checkpoint's folder in its HF repo) -> checkpoint. Parameter counts: 481.5 M,
#: 743.3 M, 337.7 M, 776.7 M x2, 354.5 M x2 (fp32 files of 1.93, 2.97, 1.35, 3.11, 1.42 GB).
OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    "Vq32ToVq8192": OfficialCheckpoint(
        "amphion/Vevo", "contentstyle_modeling/Vq32ToVq8192/model.safetensors",
        "models/vc/vevo/config/Vq32ToVq8192.json",
        VevoARConfig(LlamaSize(1536, 6144, 12, 16), input_vocab_size=1056, output_vocab_size=8192,
                     train_both_vc_and_tts=True, tts_input_vocab_size=1024, vc_input_vocab_size=32)),
    "PhoneToVq8192": OfficialCheckpoint(
        "amphion/Vevo", "contentstyle_modeling/PhoneToVq8192/model.safetensors",
        "models/vc/vevo/config/PhoneToVq8192.json",
        VevoARConfig(LlamaSize(1920, 7680, 12, 16), input_vocab_size=1024, output_vocab_size=8192,
                     train_both_vc_and_tts=False, tts_input_vocab_size=1024, vc_input_vocab_size=32)),
    "Vq8192ToMels": OfficialCheckpoint(
        "amphion/Vevo", "acoustic_modeling/Vq8192ToMels/model.safetensors",
        "models/vc/vevo/config/Vq8192ToMels.json", _VEVO_FM),
    "ar_emilia101k_singnet7k": OfficialCheckpoint(
        "amphion/Vevo1.5", "contentstyle_modeling/ar_emilia101k_singnet7k/model.safetensors",
        "models/svc/vevosing/config/ar_emilia101k_singnet7k.json", _VEVOSING_AR),
    "ar_emilia101k_sing0.4k": OfficialCheckpoint(
        "amphion/Vevo1.5", "contentstyle_modeling/ar_emilia101k_sing0.4k/model.safetensors",
        "models/svc/vevosing/config/ar_emilia101k_sing0.4k.json", _VEVOSING_AR),
    "fm_emilia101k_singnet7k": OfficialCheckpoint(
        "amphion/Vevo1.5", "acoustic_modeling/fm_emilia101k_singnet7k/model.safetensors",
        "models/svc/vevosing/config/fm_emilia101k_singnet7k.json", _VEVOSING_FM),
    "fm_emilia101k_sing0.4k": OfficialCheckpoint(
        "amphion/Vevo1.5", "acoustic_modeling/fm_emilia101k_sing0.4k/model.safetensors",
        "models/svc/vevosing/config/fm_emilia101k_sing0.4k.json", _VEVOSING_FM),
}


def official_checkpoint(name: str, kind: type | tuple[type, ...] | None = None) -> OfficialCheckpoint:
    """The entry ``name`` of :data:`OFFICIAL_CHECKPOINTS`, optionally required to hold a config of ``kind``."""
    if name not in OFFICIAL_CHECKPOINTS:
        raise VevoConfigError(f"unknown official checkpoint {name!r}; expected one of {sorted(OFFICIAL_CHECKPOINTS)}")
    entry = OFFICIAL_CHECKPOINTS[name]
    if kind is not None and not isinstance(entry.config, kind):
        raise VevoConfigError(f"{name} is a {type(entry.config).__name__} checkpoint, not what was asked for")
    return entry


# ---------------------------------------------------------------------------------------------
# Tiny profiles
# ---------------------------------------------------------------------------------------------
# Small widths and depths, but the OFFICIAL vocabularies and mel size: the tiny models then accept
# whatever the (tiny or real) tokenizers, G2P, mel front end and vocoder produce.

_TINY_LLAMA = LlamaSize(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2)


def tiny_vevo_ar_config(name: str = "Vq32ToVq8192") -> VevoARConfig:
    """A CPU-cheap Vevo AR with the vocabulary layout of ``name`` (Vq32ToVq8192 or PhoneToVq8192)."""
    official = official_checkpoint(name, VevoARConfig).config
    assert isinstance(official, VevoARConfig)
    return VevoARConfig(_TINY_LLAMA, official.input_vocab_size, official.output_vocab_size,
                        official.train_both_vc_and_tts, official.tts_input_vocab_size, official.vc_input_vocab_size,
                        limits=TINY_AR_LIMITS)


def tiny_vevosing_ar_config() -> VevoSingARConfig:
    return VevoSingARConfig(_TINY_LLAMA, _VEVOSING_AR.content_vocab_size, _VEVOSING_AR.style_vocab_size,
                            _VEVOSING_AR.content_style_vocab_size, length_bound=TINY_AR_LENGTH_BOUND)


def tiny_vevo_fm_config() -> FMConfig:
    return FMConfig(family="vevo", mel_dim=_VEVO_FM.mel_dim, hidden_size=32, num_layers=2, num_heads=2,
                    cond_codebook_size=_VEVO_FM.cond_codebook_size, cond_scale_factor=1, time_scheduler="cos")


def tiny_vevosing_fm_config() -> FMConfig:
    return FMConfig(family="vevosing", mel_dim=_VEVOSING_FM.mel_dim, hidden_size=32, num_layers=2, num_heads=2,
                    cond_codebook_size=_VEVOSING_FM.cond_codebook_size,
                    cond_scale_factor=_VEVOSING_FM.cond_scale_factor, time_scheduler="cos")

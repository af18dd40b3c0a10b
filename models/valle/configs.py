"""DualCodec-VALL-E configurations: the AR (``llama_250M.yaml``) and the NAR (``valle_nar.yaml``),
parsed from the reference's Hydra layout (``config.json`` of the parity folders has the same shape),
plus the official and ``tiny`` profiles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.core.configs import ConfigError, read_config
from models.vevo.fm_ar_configs import LlamaSize

__all__ = [
    "NUM_QUANTIZERS",
    "OFFICIAL_AR_CONFIG",
    "OFFICIAL_NAR_CONFIG",
    "TINY_AR_CONFIG",
    "TINY_NAR_CONFIG",
    "TEXT_VOCAB_SIZE",
    "ValleARConfig",
    "ValleConfigError",
    "ValleNARConfig",
    "parse_ar_config",
    "parse_nar_config",
    "read_ar_config",
    "read_nar_config",
]

#: DualCodec 12hz_v1: one semantic codebook + 7 acoustic ones.
NUM_QUANTIZERS = 8
#: Whisper's multilingual vocabulary with every special token (51866).
TEXT_VOCAB_SIZE = 51866


class ValleConfigError(ConfigError):
    """A DualCodec-VALL-E configuration that the reference would not build."""


def _positive(owner: str, **values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValleConfigError(f"{owner}.{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class ValleARConfig:
    """``LLM(LlamaForCausalLM(LlamaConfig(...)), speech_vocab_size, initial_offset, sep_token)``.

    One vocabulary: specials 0..initial_offset-1 (pad 0, bos 1, eos 2, sep 3), speech codes at
    ``initial_offset``, text ids at ``speech_vocab_size + initial_offset``.
    """

    vocab_size: int = TEXT_VOCAB_SIZE + 16384 + 10
    speech_vocab_size: int = 16384
    initial_offset: int = 10
    sep_token: int = 3
    pad_token_id: int = 0
    bos_token_id: int = 1
    eos_token_id: int = 2
    llama: LlamaSize = field(default_factory=lambda: LlamaSize(1024, 4096, 12, 16))
    #: A cap on new tokens per text token (None: none, as the reference). The tiny profile's random
    #: weights practically never sample EOS: its cap keeps tiny outputs as long as the text suggests.
    frames_per_text_token: float | None = None

    def __post_init__(self) -> None:
        _positive("ValleARConfig", vocab_size=self.vocab_size, speech_vocab_size=self.speech_vocab_size,
                  initial_offset=self.initial_offset)
        specials = {"sep_token": self.sep_token, "pad_token_id": self.pad_token_id,
                    "bos_token_id": self.bos_token_id, "eos_token_id": self.eos_token_id}
        for name, value in specials.items():
            if not 0 <= value < self.initial_offset:
                raise ValleConfigError(f"ValleARConfig.{name} {value} must lie below initial_offset {self.initial_offset}")
        if self.text_vocab_size < 1:
            raise ValleConfigError(f"vocab_size {self.vocab_size} leaves no room for text ids after "
                                   f"{self.speech_vocab_size} speech ids and {self.initial_offset} specials")

    @property
    def text_offset(self) -> int:
        return self.speech_vocab_size + self.initial_offset

    @property
    def text_vocab_size(self) -> int:
        return self.vocab_size - self.text_offset


@dataclass(frozen=True)
class ValleNARConfig:
    """``ValleNAR(phone_vocab_size, first_layer_vocab_size, target_vocab_size, ids..., hidden_size,
    intermediate_size, num_hidden_layers, num_attention_heads)`` (the class defaults of the last four
    are the official sizes)."""

    phone_vocab_size: int = 1
    first_layer_vocab_size: int = 16384
    target_vocab_size: int = 4096
    pad_token_id: int = 4097
    bos_target_id: int = 4099
    eos_target_id: int = 4100
    bos_prompt_id: int = 4101
    eos_prompt_id: int = 4102
    bos_phone_id: int = 4103
    eos_phone_id: int = 4104
    hidden_size: int = 1024
    intermediate_size: int = 4096
    num_hidden_layers: int = 12
    num_attention_heads: int = 16
    rms_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        _positive("ValleNARConfig", phone_vocab_size=self.phone_vocab_size,
                  first_layer_vocab_size=self.first_layer_vocab_size, target_vocab_size=self.target_vocab_size,
                  hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
                  num_hidden_layers=self.num_hidden_layers, num_attention_heads=self.num_attention_heads)
        if self.hidden_size % self.num_attention_heads or (self.hidden_size // self.num_attention_heads) % 2:
            raise ValleConfigError(f"hidden_size {self.hidden_size} must split into {self.num_attention_heads} "
                                   "heads of even size (RoPE)")

    @property
    def vocab_size(self) -> int:
        """Rows of every head: ``phone_vocab_size + target_vocab_size + 10``."""
        return self.phone_vocab_size + self.target_vocab_size + 10


OFFICIAL_AR_CONFIG = ValleARConfig()
OFFICIAL_NAR_CONFIG = ValleNARConfig()
#: Tiny profiles: the real text vocabulary (so the text front end's ids fit) and real code ranges
#: (so DualCodec's codes fit), small transformers.
TINY_AR_CONFIG = ValleARConfig(llama=LlamaSize(32, 64, 2, 4), frames_per_text_token=3.0)
TINY_NAR_CONFIG = ValleNARConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


# ---------------------------------------------------------------------------------------------
# Parsing the reference's layout
# ---------------------------------------------------------------------------------------------

_LLAMA_KEYS = {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
               "pad_token_id", "bos_token_id", "eos_token_id", "rms_norm_eps", "rope_theta", "_target_"}


def _as_mapping(raw: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValleConfigError(f"{what}: expected a mapping, got {type(raw).__name__}")
    return raw


def _resolve(value: Any, root: Mapping[str, Any], key: str) -> Any:
    """The yaml's ``${..name}`` interpolations point at top-level keys."""
    if isinstance(value, str) and value.startswith("${..") and value.endswith("}"):
        name = value[4:-1]
        if name not in root:
            raise ValleConfigError(f"{key}: {value} names no top-level key")
        return root[name]
    return value


def parse_ar_config(raw: Mapping[str, Any]) -> ValleARConfig:
    """The AR yaml (top-level ``vocab_size`` / ``speech_vocab_size`` / ``initial_offset``,
    ``llama_cfg`` and ``model``), interpolations resolved or not."""
    raw = _as_mapping(raw, "VALL-E AR config")
    llama = dict(_as_mapping(raw.get("llama_cfg", {}), "llama_cfg"))
    unknown = set(llama) - _LLAMA_KEYS
    if unknown:
        raise ValleConfigError(f"llama_cfg: keys this port does not implement: {sorted(unknown)}")
    llama = {k: _resolve(v, raw, f"llama_cfg.{k}") for k, v in llama.items()}
    model = {k: _resolve(v, raw, f"model.{k}") for k, v in _as_mapping(raw.get("model", {}), "model").items()}
    vocab = llama.get("vocab_size", raw.get("vocab_size"))
    if vocab is None:
        raise ValleConfigError("VALL-E AR config: no vocab_size")
    defaults = ValleARConfig()
    try:
        size = LlamaSize(int(llama.get("hidden_size", 4096)), int(llama.get("intermediate_size", 11008)),
                         int(llama.get("num_hidden_layers", 32)), int(llama.get("num_attention_heads", 32)),
                         float(llama.get("rms_norm_eps", 1e-6)), float(llama.get("rope_theta", 10000.0)))
    except ValueError as exc:
        raise ValleConfigError(str(exc)) from None
    return ValleARConfig(
        vocab_size=int(vocab),
        speech_vocab_size=int(model.get("speech_vocab_size", raw.get("speech_vocab_size", defaults.speech_vocab_size))),
        initial_offset=int(model.get("initial_offset", raw.get("initial_offset", defaults.initial_offset))),
        sep_token=int(model.get("sep_token", defaults.sep_token)),
        pad_token_id=int(llama.get("pad_token_id", defaults.pad_token_id)),
        bos_token_id=int(llama.get("bos_token_id", defaults.bos_token_id)),
        eos_token_id=int(llama.get("eos_token_id", defaults.eos_token_id)),
        llama=size,
    )


_NAR_KEYS = {f for f in ValleNARConfig.__dataclass_fields__ if f != "rms_norm_eps"} | {"_target_"}


def parse_nar_config(raw: Mapping[str, Any]) -> ValleNARConfig:
    """The NAR yaml: ``{"model": {...}}`` (or the constructor kwargs themselves)."""
    raw = _as_mapping(raw, "VALL-E NAR config")
    model = dict(_as_mapping(raw["model"], "model")) if "model" in raw else dict(raw)
    unknown = set(model) - _NAR_KEYS
    if unknown:
        raise ValleConfigError(f"VALL-E NAR config: unknown keys {sorted(unknown)}")
    model.pop("_target_", None)
    return ValleNARConfig(**{k: int(v) for k, v in model.items()})


def read_ar_config(path: str | Path) -> ValleARConfig:
    return parse_ar_config(read_config(Path(path)))


def read_nar_config(path: str | Path) -> ValleNARConfig:
    return parse_nar_config(read_config(Path(path)))

"""Vocoder configurations, parsed from the formats the official checkpoints ship with.

:func:`parse_config` reads NVIDIA's flat ``config.json`` (BigVGAN, and jik876-style HiFi-GAN) or
Amphion's ``args.json`` / ``exp_config.json`` (``preprocess`` + ``model.<generator>``; json5 accepted)
into a :class:`VocoderConfig`: generator sizes, mel front end and F0 range; a file that does not
describe the vocoder is a :class:`ConfigError`. :func:`tiny_config` gives the tiny profiles. The two
formats and the BigVGAN tanh / bias difference: ``models/vocoders/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from models.audio.f0 import DEFAULT_F0_MAX, DEFAULT_F0_MIN
from models.audio.mel import MelConfig
from models.core.configs import ConfigError

VOCODER_NAMES = ("bigvgan", "hifigan", "nsf_hifigan")

# Our vocoder name -> the value of Amphion's ``model.generator`` (and the key of its block).
AMPHION_GENERATOR_KEYS = {"bigvgan": "bigvgan", "hifigan": "hifigan", "nsf_hifigan": "nsfhifigan"}


# ---------------------------------------------------------------------------------------------
# Generator configurations
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HiFiGANConfig:
    n_mels: int
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock: str
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]

    @property
    def upsample_factor(self) -> int:
        factor = 1
        for r in self.upsample_rates:
            factor *= r
        return factor


@dataclass(frozen=True)
class BigVGANConfig(HiFiGANConfig):
    activation: str = "snakebeta"
    snake_logscale: bool = True
    # NVIDIA v2 checkpoints: False / False (clamp to [-1, 1], conv_post without bias).
    # NVIDIA v1 and every Amphion BigVGAN: True / True.
    use_tanh_at_final: bool = True
    use_bias_at_final: bool = True


@dataclass(frozen=True)
class NSFHiFiGANConfig(HiFiGANConfig):
    harmonic_num: int = 8
    # The sine source runs at the audio rate (Amphion passes ``preprocess.sample_rate``).
    sample_rate: int = 24000


GeneratorConfig = Union[HiFiGANConfig, BigVGANConfig, NSFHiFiGANConfig]


@dataclass(frozen=True)
class VocoderConfig:
    """Everything needed to build one vocoder: generator sizes plus its mel / F0 front end."""

    name: str
    generator: GeneratorConfig
    mel: MelConfig
    f0_min: float = DEFAULT_F0_MIN
    f0_max: float = DEFAULT_F0_MAX
    # Where the config came from ("nvidia", "amphion" or "tiny"); informational only.
    source_format: str = field(default="tiny", compare=False)


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def _require(d: dict, key: str, where: str) -> Any:
    if key not in d or d[key] is None:
        raise ConfigError(f"{where}: missing required key {key!r}")
    return d[key]


def _ints(values: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _generator_fields(block: dict, n_mels: int, where: str) -> dict:
    dilations = tuple(_ints(d) for d in _require(block, "resblock_dilation_sizes", where))
    fields = dict(
        n_mels=int(n_mels),
        upsample_rates=_ints(_require(block, "upsample_rates", where)),
        upsample_kernel_sizes=_ints(_require(block, "upsample_kernel_sizes", where)),
        upsample_initial_channel=int(_require(block, "upsample_initial_channel", where)),
        resblock=str(_require(block, "resblock", where)),
        resblock_kernel_sizes=_ints(_require(block, "resblock_kernel_sizes", where)),
        resblock_dilation_sizes=dilations,
    )
    if len(fields["upsample_rates"]) != len(fields["upsample_kernel_sizes"]):
        raise ConfigError(f"{where}: upsample_rates and upsample_kernel_sizes differ in length")
    if len(fields["resblock_kernel_sizes"]) != len(dilations):
        raise ConfigError(f"{where}: resblock_kernel_sizes and resblock_dilation_sizes differ in length")
    if fields["upsample_initial_channel"] // 2 ** len(fields["upsample_rates"]) < 1:
        # Every stage halves the channels; the last one must keep at least one.
        raise ConfigError(f"{where}: upsample_initial_channel too small for {len(fields['upsample_rates'])} stages")
    return fields


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def parse_flat_config(name: str, raw: dict) -> VocoderConfig:
    """NVIDIA BigVGAN ``config.json`` (also jik876 HiFi-GAN configs, which use the same keys)."""
    where = f"{name} config.json"
    if name not in ("bigvgan", "hifigan"):
        raise ConfigError(f"{where}: the flat (NVIDIA) config format is not used by {name}")
    mel = MelConfig(
        sample_rate=int(_require(raw, "sampling_rate", where)),
        n_fft=int(_require(raw, "n_fft", where)),
        hop_length=int(_require(raw, "hop_size", where)),
        win_length=int(_require(raw, "win_size", where)),
        n_mels=int(_require(raw, "num_mels", where)),
        fmin=float(raw.get("fmin") or 0.0),
        fmax=_optional_float(raw.get("fmax")),
    )
    fields = _generator_fields(raw, mel.n_mels, where)
    if name == "bigvgan":
        gen: GeneratorConfig = BigVGANConfig(
            **fields,
            activation=str(_require(raw, "activation", where)),
            snake_logscale=bool(_require(raw, "snake_logscale", where)),
            # NVIDIA's constructor defaults both to True when the key is absent (v1 configs).
            use_tanh_at_final=bool(raw.get("use_tanh_at_final", True)),
            use_bias_at_final=bool(raw.get("use_bias_at_final", True)),
        )
    else:
        gen = HiFiGANConfig(**fields)
    return VocoderConfig(name=name, generator=gen, mel=mel, source_format="nvidia")


def parse_amphion_config(name: str, raw: dict) -> VocoderConfig:
    """Amphion ``args.json`` / ``exp_config.json`` (``preprocess`` + ``model.<generator>``)."""
    where = f"{name} Amphion config"
    expected = AMPHION_GENERATOR_KEYS[name]
    pre = _require(raw, "preprocess", where)
    model = _require(raw, "model", where)
    generator = model.get("generator", expected)
    if generator != expected:
        raise ConfigError(f"{where}: model.generator is {generator!r}, expected {expected!r}")
    block = _require(model, expected, f"{where} model")
    mel = MelConfig(
        sample_rate=int(_require(pre, "sample_rate", where)),
        n_fft=int(_require(pre, "n_fft", where)),
        hop_length=int(_require(pre, "hop_size", where)),
        win_length=int(_require(pre, "win_size", where)),
        n_mels=int(_require(pre, "n_mel", where)),
        fmin=float(pre.get("fmin") or 0.0),
        fmax=_optional_float(pre.get("fmax")),
    )
    fields = _generator_fields(block, mel.n_mels, f"{where} model.{expected}")
    if name == "bigvgan":
        # Amphion's BigVGAN class hard-codes tanh and a final bias, whatever the config says.
        gen: GeneratorConfig = BigVGANConfig(
            **fields,
            activation=str(block.get("activation", "snakebeta")),
            snake_logscale=bool(block.get("snake_logscale", True)),
            use_tanh_at_final=True,
            use_bias_at_final=True,
        )
    elif name == "nsf_hifigan":
        gen = NSFHiFiGANConfig(
            **fields, harmonic_num=int(block.get("harmonic_num", 8)), sample_rate=mel.sample_rate
        )
    else:
        gen = HiFiGANConfig(**fields)
    return VocoderConfig(
        name=name,
        generator=gen,
        mel=mel,
        f0_min=float(pre.get("f0_min", DEFAULT_F0_MIN)),
        f0_max=float(pre.get("f0_max", DEFAULT_F0_MAX)),
        source_format="amphion",
    )


def parse_config(name: str, raw: dict) -> VocoderConfig:
    """Parse either format; the shape of ``raw`` says which one it is."""
    if name not in VOCODER_NAMES:
        raise ConfigError(f"unknown vocoder {name!r}; expected one of {VOCODER_NAMES}")
    if "model" in raw and "preprocess" in raw:
        return parse_amphion_config(name, raw)
    if "upsample_rates" in raw:
        return parse_flat_config(name, raw)
    raise ConfigError(f"{name}: unrecognised config format (neither Amphion args.json nor NVIDIA config.json)")


# ---------------------------------------------------------------------------------------------
# Tiny configurations: the official mel front end and stage layout, few channels
# ---------------------------------------------------------------------------------------------

def tiny_config(name: str) -> VocoderConfig:
    """A small random-weight stand-in with the official I/O contract (24 kHz, 100 mels, hop 256).

    Stage layouts are those of the official checkpoints (BigVGAN v2 [4,4,2,2,2,2]; Amphion's
    tfr_enhanced HiFi-GAN and NSF-HiFiGAN recipes [8,4,2,2,2]) so the same code paths run; only
    the channel count is cut (1536 / 768 -> 64) to keep CPU inference fast.
    """
    dil = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    if name == "bigvgan":
        gen: GeneratorConfig = BigVGANConfig(
            n_mels=100,
            upsample_rates=(4, 4, 2, 2, 2, 2),
            upsample_kernel_sizes=(8, 8, 4, 4, 4, 4),
            upsample_initial_channel=64,
            resblock="1",
            resblock_kernel_sizes=(3, 7, 11),
            resblock_dilation_sizes=dil,
            activation="snakebeta",
            snake_logscale=True,
            use_tanh_at_final=False,
            use_bias_at_final=False,
        )
        mel = MelConfig(24000, 1024, 256, 1024, 100, 0.0, None)  # NVIDIA v2: fmax null
    elif name == "hifigan":
        gen = HiFiGANConfig(
            n_mels=100,
            upsample_rates=(8, 4, 2, 2, 2),
            upsample_kernel_sizes=(16, 8, 4, 4, 4),
            upsample_initial_channel=64,
            resblock="1",
            resblock_kernel_sizes=(3, 5, 7),
            resblock_dilation_sizes=dil,
        )
        mel = MelConfig(24000, 1024, 256, 1024, 100, 0.0, 12000.0)
    elif name == "nsf_hifigan":
        gen = NSFHiFiGANConfig(
            n_mels=100,
            upsample_rates=(8, 4, 2, 2, 2),
            upsample_kernel_sizes=(16, 8, 4, 4, 4),
            upsample_initial_channel=64,
            resblock="1",
            resblock_kernel_sizes=(3, 7, 11),
            resblock_dilation_sizes=dil,
            harmonic_num=8,
            sample_rate=24000,
        )
        mel = MelConfig(24000, 1024, 256, 1024, 100, 0.0, 12000.0)
    else:
        raise ConfigError(f"unknown vocoder {name!r}; expected one of {VOCODER_NAMES}")
    return VocoderConfig(name=name, generator=gen, mel=mel, source_format="tiny")

"""Configurations of Amphion's text-to-audio model (``amphion/text_to_audio``), parsed from the shapes
the reference ships: the experiment config (``model.audioldm``, ``model.autoencoderkl``,
``model.noise_scheduler``; json5 accepted), the jik876 HiFi-GAN ``config.json`` and transformers'
T5 ``config.json``.

The hub repo holds checkpoints only; the experiment config lives in Amphion's code repository
(``egs/tta/audioldm/exp_config.json``), so its values are written out here (:data:`OFFICIAL_EXP_CONFIG`).
:func:`tiny_exp_config`, :func:`tiny_vocoder_config` and :func:`tiny_t5_config` are the CPU test
profile. What each field means: ``models/audioldm/README.md``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any, Mapping

from models.core.configs import ConfigError
from models.vocoders.configs import HiFiGANConfig, VocoderConfig, parse_flat_config

__all__ = [
    "ConfigError",
    "ExpConfig",
    "MEL_BINS",
    "MEL_FRAMES",
    "OFFICIAL_EXP_CONFIG",
    "OFFICIAL_T5_REPO_CONFIG",
    "SAMPLE_RATE",
    "SchedulerConfig",
    "TINY_T5_WIDTH",
    "UNetConfig",
    "VAEConfig",
    "VOCODER_INPUT_BINS",
    "max_samples",
    "parse_exp_config",
    "parse_vocoder_config",
    "tiny_exp_config",
    "tiny_t5_config",
    "tiny_vocoder_config",
]

#: The mel the reference generates: ``AudioLDMInference.inference`` hard-codes 80 bins x 624 frames
#: (the latent is that divided by 2**(len(ch_mult) - 1) on both axes).
MEL_BINS = 80
MEL_FRAMES = 624
#: Output rate of the TTA HiFi-GAN (jik876 config ``sampling_rate``; the reference writes 16 kHz WAVs).
SAMPLE_RATE = 16000
#: The jik876 generator's first conv reads 80 channels whatever ``num_mels`` says.
VOCODER_INPUT_BINS = 80


# ---------------------------------------------------------------------------------------------
# dataclasses
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UNetConfig:
    """``model.audioldm``: the constructor arguments of Amphion's ``AudioLDM`` (an LDM "openaimodel"
    UNet with spatial transformers). Only the configuration the recipes use is supported: spatial
    transformers with ``num_heads`` heads of ``channels // num_heads`` dims, conv resampling, no
    scale-shift norm, no class labels."""

    in_channels: int
    out_channels: int
    model_channels: int
    num_res_blocks: int
    attention_resolutions: tuple[int, ...]
    channel_mult: tuple[int, ...]
    num_heads: int
    transformer_depth: int
    context_dim: int
    image_size: int = 32  # unused by the forward pass (kept: it is in every config)

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.model_channels


@dataclass(frozen=True)
class VAEConfig:
    """``model.autoencoderkl``: Amphion's mel ``AutoencoderKL`` (no attention, GAN-trained)."""

    ch: int
    ch_mult: tuple[int, ...]
    num_res_blocks: int
    in_channels: int
    out_ch: int
    z_channels: int

    @property
    def downsampling(self) -> int:
        """Latent cells per mel bin / frame, each way: 2 ** (levels - 1)."""
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def latent_size(self) -> tuple[int, int]:
        """The latent the reference samples: (80 // 2**(L-1), 624 // 2**(L-1)); official 5 x 39."""
        return MEL_BINS // self.downsampling, MEL_FRAMES // self.downsampling

    @property
    def mel_size(self) -> tuple[int, int]:
        """The mel the decoder makes from :attr:`latent_size` (80 x 624 whenever they divide)."""
        h, w = self.latent_size
        return h * self.downsampling, w * self.downsampling


@dataclass(frozen=True)
class SchedulerConfig:
    """The PNDM settings ``AudioLDMInference.inference`` hard-codes (the config's
    ``model.noise_scheduler`` block is never read at inference; it holds the same values)."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    skip_prk_steps: bool = True
    set_alpha_to_one: bool = False
    steps_offset: int = 1
    prediction_type: str = "epsilon"


@dataclass(frozen=True)
class ExpConfig:
    """An experiment config: the UNet, the VAE (either may be absent: the UNet's and the VAE's
    training configs each hold one) and the VAE checkpoint path the recipe names, if any."""

    unet: UNetConfig | None
    vae: VAEConfig | None
    autoencoder_path: str | None = None
    scheduler: SchedulerConfig = SchedulerConfig()


# ---------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------


def _require(block: Mapping, key: str, where: str) -> Any:
    if key not in block or block[key] is None:
        raise ConfigError(f"{where}: missing required key {key!r}")
    return block[key]


def _positive_int(block: Mapping, key: str, where: str) -> int:
    value = _require(block, key, where)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {key} must be a positive integer, got {value!r}")
    return value


def _int_tuple(block: Mapping, key: str, where: str) -> tuple[int, ...]:
    value = _require(block, key, where)
    if not isinstance(value, (list, tuple)) or not value or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
    ):
        raise ConfigError(f"{where}: {key} must be a non-empty list of positive integers, got {value!r}")
    return tuple(value)


def _parse_unet(block: Mapping) -> UNetConfig:
    where = "model.audioldm"
    if block.get("use_spatial_transformer", True) is not True:
        raise ConfigError(f"{where}: only use_spatial_transformer=true is supported (the TTA recipes' setting)")
    for key, supported in (("num_head_channels", -1), ("use_scale_shift_norm", False), ("resblock_updown", False),
                           ("num_classes", None), ("conv_resample", True), ("dims", 2)):
        if key in block and block[key] != supported:
            raise ConfigError(f"{where}: {key}={block[key]!r} is not supported (only {supported!r})")
    cfg = UNetConfig(
        in_channels=_positive_int(block, "in_channels", where),
        out_channels=_positive_int(block, "out_channels", where),
        model_channels=_positive_int(block, "model_channels", where),
        num_res_blocks=_positive_int(block, "num_res_blocks", where),
        attention_resolutions=_int_tuple(block, "attention_resolutions", where),
        channel_mult=_int_tuple(block, "channel_mult", where),
        num_heads=_positive_int(block, "num_heads", where),
        transformer_depth=_positive_int(block, "transformer_depth", where) if "transformer_depth" in block else 1,
        context_dim=_positive_int(block, "context_dim", where),
        image_size=int(block.get("image_size", 32)),
    )
    for mult in cfg.channel_mult:
        ch = mult * cfg.model_channels
        if ch % 32:
            raise ConfigError(f"{where}: every level's channels must be a multiple of 32 (GroupNorm(32)), got {ch}")
        if ch % cfg.num_heads:
            raise ConfigError(f"{where}: {ch} channels do not split into {cfg.num_heads} heads")
    return cfg


def _parse_vae(block: Mapping) -> VAEConfig:
    where = "model.autoencoderkl"
    if block.get("double_z", True) is not True:
        raise ConfigError(f"{where}: double_z must be true (Amphion's AutoencoderKL asserts it)")
    cfg = VAEConfig(
        ch=_positive_int(block, "ch", where),
        ch_mult=_int_tuple(block, "ch_mult", where),
        num_res_blocks=_positive_int(block, "num_res_blocks", where),
        in_channels=_positive_int(block, "in_channels", where),
        out_ch=_positive_int(block, "out_ch", where),
        z_channels=_positive_int(block, "z_channels", where),
    )
    if any((m * cfg.ch) % 32 for m in cfg.ch_mult):
        raise ConfigError(f"{where}: every level's channels must be a multiple of 32 (GroupNorm(32))")
    if min(cfg.latent_size) < 1:
        raise ConfigError(f"{where}: {len(cfg.ch_mult)} levels leave no latent for an {MEL_BINS}x{MEL_FRAMES} mel")
    return cfg


def parse_exp_config(raw: Mapping) -> ExpConfig:
    """An Amphion TTA experiment config (``model.audioldm`` and / or ``model.autoencoderkl``)."""
    if not isinstance(raw, Mapping):
        raise ConfigError("experiment config: expected a JSON object")
    model = raw.get("model")
    if not isinstance(model, Mapping):
        raise ConfigError("experiment config: missing the 'model' block")
    unet = _parse_unet(model["audioldm"]) if isinstance(model.get("audioldm"), Mapping) else None
    vae = _parse_vae(model["autoencoderkl"]) if isinstance(model.get("autoencoderkl"), Mapping) else None
    if unet is None and vae is None:
        raise ConfigError("experiment config: neither model.audioldm nor model.autoencoderkl is present")
    path = model.get("autoencoder_path")
    return ExpConfig(unet=unet, vae=vae, autoencoder_path=str(path) if path else None)


def parse_vocoder_config(raw: Mapping) -> VocoderConfig:
    """The jik876 HiFi-GAN ``config.json`` (``hifigan_checkpoints/config.json``), through the vocoder
    family's flat-config parser. The generator reads 80 bins whatever ``num_mels`` says (the
    reference's ``conv_pre`` hard-codes it), so that is what the generator config gets."""
    cfg = parse_flat_config("hifigan", dict(raw))
    gen: HiFiGANConfig = replace(cfg.generator, n_mels=VOCODER_INPUT_BINS)
    return replace(cfg, generator=gen)


# ---------------------------------------------------------------------------------------------
# official and tiny values
# ---------------------------------------------------------------------------------------------

#: ``egs/tta/audioldm/exp_config.json`` of Amphion at commit d3de90f0 (model block only): the
#: configuration of ``audioldm_debug_latent_size_4_5_39`` and of ``autoencoder_kl_debug``.
OFFICIAL_EXP_CONFIG: dict = {
    "model_type": "AudioLDM",
    "model": {
        "audioldm": {
            "image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 256,
            "attention_resolutions": [4, 2, 1], "num_res_blocks": 2, "channel_mult": [1, 2, 4],
            "num_heads": 8, "use_spatial_transformer": True, "transformer_depth": 1, "context_dim": 768,
            "use_checkpoint": True, "legacy": False,
        },
        "autoencoderkl": {
            "ch": 128, "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2, "in_channels": 1, "z_channels": 4,
            "out_ch": 1, "double_z": True,
        },
        "noise_scheduler": {
            "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "clip_sample": False, "steps_offset": 1, "set_alpha_to_one": False, "skip_prk_steps": True,
            "prediction_type": "epsilon",
        },
    },
}

#: What ``google-t5/t5-base``'s config.json says about the encoder (for documentation and tests;
#: the official path reads the file itself).
OFFICIAL_T5_REPO_CONFIG: dict = {
    "model_type": "t5", "vocab_size": 32128, "d_model": 768, "d_kv": 64, "d_ff": 3072, "num_layers": 12,
    "num_heads": 12, "relative_attention_num_buckets": 32, "dropout_rate": 0.1, "layer_norm_epsilon": 1e-6,
    "feed_forward_proj": "relu", "is_encoder_decoder": True, "pad_token_id": 0, "eos_token_id": 1,
}

#: Tiny text encoder width; the tiny UNet's context_dim.
TINY_T5_WIDTH = 32


def tiny_exp_config() -> dict:
    """The tiny profile's experiment config: the official structure (three UNet levels would not fit
    a 5 x 39 latent any better than two, so two; five VAE levels so the latent is still 5 x 39 and
    the audio still 159 744 samples), 32 channels, one residual block per level."""
    raw = copy.deepcopy(OFFICIAL_EXP_CONFIG)
    raw["model"]["audioldm"].update(model_channels=32, channel_mult=[1, 2], num_res_blocks=1, num_heads=2,
                                    context_dim=TINY_T5_WIDTH)
    raw["model"]["autoencoderkl"].update(ch=32, ch_mult=[1, 1, 1, 1, 1], num_res_blocks=1)
    return raw


def tiny_vocoder_config() -> dict:
    """jik876-format config of the tiny vocoder: the official rates (hop 256, 16 kHz), 32 channels."""
    return {
        "resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
        "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "num_mels": 80, "num_freq": 1025,
        "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": SAMPLE_RATE, "fmin": 0, "fmax": 8000,
    }


def tiny_t5_config(vocab_size: int) -> dict:
    """transformers T5 config of the tiny text encoder (T5-base's structure, 2 layers, 32 wide)."""
    return {
        "model_type": "t5", "vocab_size": int(vocab_size), "d_model": TINY_T5_WIDTH, "d_kv": 8, "d_ff": 64,
        "num_layers": 2, "num_heads": 4, "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
        "dropout_rate": 0.0, "layer_norm_epsilon": 1e-6, "feed_forward_proj": "relu", "is_encoder_decoder": False,
        "pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0,
    }


def max_samples(vae: VAEConfig, hop: int) -> int:
    """Samples the model makes per call: the decoded mel's frames times the vocoder's hop."""
    return vae.mel_size[1] * hop


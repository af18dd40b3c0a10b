"""PicoAudio's configurations: the official values (written out here, with where each comes from),
the ``tiny`` ones, and parsers for the reference's own file formats.

* UNet: diffusers ``UNet2DConditionModel`` config (PicoAudio's ``utils/configs/frequency.json``):
  10 input channels (2 onset + 8 latent), 8 output, cross-attention over one token of 2 x the CLAP
  embedding size. ``attention_head_dim`` is what diffusers reads as the number of heads.
* Scheduler: Stable Diffusion 2.1's ``scheduler/scheduler_config.json`` (the reference calls
  ``DDPMScheduler.from_pretrained("stabilityai/stable-diffusion-2-1", subfolder="scheduler")``):
  v-prediction, scaled-linear betas 0.00085 -> 0.012, ``steps_offset`` 1.
* VAE: the ``AutoencoderKL(**vae_config)`` arguments of AudioLDM's first stage
  (``ckpts/ldm/vae_config.json``: ``ddconfig``, ``embed_dim``, ``scale_factor``, ...), parsed by
  :func:`parse_vae_config`.
* Vocoder: AudioLDM's ``HIFIGAN_16K_64`` (hard-coded in the reference's ``hifigan/utilities.py``):
  a jik876 HiFi-GAN, 64 mels, hop 160, 16 kHz, parsed by the vocoders' own flat-config parser.
* CLAP text tower: LAION-CLAP 630k-audioset (HTSAT-tiny + RoBERTa-base text branch, 512-d
  projection with ReLU), as transformers' ``ClapTextConfig``; RoBERTa-base's own values
  (LayerNorm eps 1e-5, 514 positions, one token type). Texts are tokenized to 77 tokens.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from models.core.configs import ConfigError
from models.vocoders.configs import VocoderConfig, parse_config as parse_vocoder_config

__all__ = [
    "CLAP_TEXT_MAX_LENGTH",
    "OFFICIAL_CLAP_TEXT_CONFIG",
    "OFFICIAL_UNET_CONFIG",
    "OFFICIAL_VOCODER_CONFIG",
    "SCHEDULER_CONFIG",
    "TINY_CLAP_TEXT_CONFIG",
    "TINY_UNET_CONFIG",
    "TINY_VAE_CONFIG",
    "TINY_VOCODER_CONFIG",
    "VAEConfig",
    "parse_unet_config",
    "parse_vae_config",
    "parse_vocoder",
]

# ---------------------------------------------------------------------------------------------
# UNet (diffusers format)

OFFICIAL_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "attention_head_dim": [4, 8, 16, 16],
    "block_out_channels": [128, 256, 512, 512],
    "center_input_sample": False,
    "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "dual_cross_attention": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 10,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 8,
    "sample_size": [32, 2],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "use_linear_projection": True,
    "upcast_attention": True,
}

#: Same blocks, few channels; cross-attention over 2 x the tiny CLAP projection (8).
TINY_UNET_CONFIG: dict[str, Any] = {
    **copy.deepcopy(OFFICIAL_UNET_CONFIG),
    "attention_head_dim": [2, 2, 4, 4],
    "block_out_channels": [16, 16, 32, 32],
    "cross_attention_dim": 16,
    "layers_per_block": 1,
    "norm_num_groups": 8,
}

#: Latent channels the UNet denoises (its input adds the 2 onset channels).
LATENT_CHANNELS = 8
ONSET_CHANNELS = 2


def parse_unet_config(raw: dict[str, Any]) -> dict[str, Any]:
    """A diffusers UNet config (``frequency.json`` shape) checked for what PicoAudio needs."""
    cfg = {k: v for k, v in raw.items() if not k.startswith("_")}
    for key in ("in_channels", "out_channels", "cross_attention_dim", "block_out_channels"):
        if key not in cfg:
            raise ConfigError(f"PicoAudio UNet config: missing {key!r}")
    if cfg["in_channels"] != cfg["out_channels"] + ONSET_CHANNELS:
        raise ConfigError(f"PicoAudio UNet config: in_channels must be out_channels + {ONSET_CHANNELS} "
                          f"(onset channels), got {cfg['in_channels']} and {cfg['out_channels']}")
    if int(cfg["cross_attention_dim"]) % 2:
        raise ConfigError("PicoAudio UNet config: cross_attention_dim must be 2 x the CLAP embedding size")
    if len(cfg["block_out_channels"]) != 4:
        # 256 x 16 latents: three halvings reach 32 x 2; the model was built for exactly that.
        raise ConfigError("PicoAudio UNet config: expected 4 blocks (256 x 16 latents, three down-samplings)")
    return cfg


# ---------------------------------------------------------------------------------------------
# Scheduler

SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "trained_betas": None,
    "clip_sample": False,
    "prediction_type": "v_prediction",
    "steps_offset": 1,
    "variance_type": "fixed_small",
    "timestep_spacing": "leading",
}

# ---------------------------------------------------------------------------------------------
# VAE (AudioLDM first stage, LDM format)


@dataclass(frozen=True)
class VAEConfig:
    """What the VAE needs from ``vae_config.json`` (LDM ``ddconfig`` + ``embed_dim`` + ``scale_factor``)."""

    in_channels: int
    out_channels: int
    channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    z_channels: int
    scale_factor: float

    @property
    def block_out_channels(self) -> tuple[int, ...]:
        return tuple(self.channels * m for m in self.channel_mult)

    def diffusers_kwargs(self) -> dict[str, Any]:
        """The same network as diffusers ``AutoencoderKL`` arguments (LDM's GroupNorm: 32 groups)."""
        n = len(self.channel_mult)
        return dict(
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=self.block_out_channels,
            layers_per_block=self.num_res_blocks,
            act_fn="silu",
            latent_channels=self.z_channels,
            norm_num_groups=32,
            scaling_factor=self.scale_factor,
        )


def _require(d: dict, key: str, where: str) -> Any:
    if key not in d or d[key] is None:
        raise ConfigError(f"{where}: missing {key!r}")
    return d[key]


def parse_vae_config(raw: dict[str, Any]) -> VAEConfig:
    """``vae_config.json`` (AudioLDM ``AutoencoderKL`` kwargs) -> :class:`VAEConfig`.

    Only the variant AudioLDM and PicoAudio use is accepted (diffusers' AutoencoderKL computes
    exactly it): attention only in the middle blocks, mel-spectrogram input without sub-bands,
    ``double_z``, and ``embed_dim == z_channels`` (diffusers uses one latent width for both)."""
    where = "PicoAudio vae_config.json"
    dd = _require(raw, "ddconfig", where)
    if not dd.get("double_z", True):
        raise ConfigError(f"{where}: ddconfig.double_z must be true")
    if list(dd.get("attn_resolutions", [])):
        raise ConfigError(f"{where}: attention at resolutions {dd['attn_resolutions']} is not supported "
                          "(AudioLDM's VAE has it only in the middle blocks)")
    if int(raw.get("subband", 1)) != 1:
        raise ConfigError(f"{where}: sub-band VAEs are not supported")
    if dd.get("downsample_time_stride4_levels"):
        raise ConfigError(f"{where}: time-stride-4 levels are not supported")
    z = int(_require(dd, "z_channels", where))
    embed = int(_require(raw, "embed_dim", where))
    if embed != z:
        raise ConfigError(f"{where}: embed_dim ({embed}) must equal ddconfig.z_channels ({z})")
    ch = int(_require(dd, "ch", where))
    if ch % 32:
        raise ConfigError(f"{where}: ddconfig.ch must be a multiple of 32 (LDM GroupNorm has 32 groups)")
    return VAEConfig(
        in_channels=int(_require(dd, "in_channels", where)),
        out_channels=int(_require(dd, "out_ch", where)),
        channels=ch,
        channel_mult=tuple(int(m) for m in _require(dd, "ch_mult", where)),
        num_res_blocks=int(_require(dd, "num_res_blocks", where)),
        z_channels=z,
        scale_factor=float(_require(raw, "scale_factor", where)),
    )


#: ``vae_config.json`` of the tiny profile: the official layout (3 levels, 4x down-sampling of the
#: 1024 x 64 mel), 32 channels, one res-block per level.
TINY_VAE_CONFIG: dict[str, Any] = {
    "image_key": "fbank",
    "subband": 1,
    "embed_dim": 8,
    "time_shuffle": 1,
    "ddconfig": {
        "double_z": True,
        "z_channels": 8,
        "resolution": 256,
        "downsample_time": False,
        "in_channels": 1,
        "out_ch": 1,
        "ch": 32,
        "ch_mult": [1, 1, 1],
        "num_res_blocks": 1,
        "attn_resolutions": [],
        "dropout": 0.0,
    },
    "scale_factor": 1.0,
}

# ---------------------------------------------------------------------------------------------
# Vocoder (AudioLDM HiFi-GAN, 16 kHz, 64 mels)

OFFICIAL_VOCODER_CONFIG: dict[str, Any] = {
    "resblock": "1",
    "upsample_rates": [5, 4, 2, 2, 2],
    "upsample_kernel_sizes": [16, 16, 8, 4, 4],
    "upsample_initial_channel": 1024,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "num_mels": 64,
    "n_fft": 1024,
    "hop_size": 160,
    "win_size": 1024,
    "sampling_rate": 16000,
    "fmin": 0,
    "fmax": 8000,
}

TINY_VOCODER_CONFIG: dict[str, Any] = {**copy.deepcopy(OFFICIAL_VOCODER_CONFIG), "upsample_initial_channel": 32}


def parse_vocoder(raw: dict[str, Any]) -> VocoderConfig:
    """A HiFi-GAN config in the jik876 / AudioLDM flat format (``HIFIGAN_16K_64`` shape)."""
    cfg = parse_vocoder_config("hifigan", raw)
    if cfg.generator.upsample_factor != cfg.mel.hop_length:
        raise ConfigError(f"PicoAudio vocoder config: upsampling {cfg.generator.upsample_factor} != hop "
                          f"{cfg.mel.hop_length}")
    return cfg


# ---------------------------------------------------------------------------------------------
# CLAP text tower (transformers ClapTextConfig)

CLAP_TEXT_MAX_LENGTH = 77

OFFICIAL_CLAP_TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": 50265,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-05,
    "projection_dim": 512,
    "projection_hidden_act": "relu",
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}

#: Tiny text tower; its vocabulary is the tiny tokenizer's (models.picoaudio.clap.tiny_tokenizer).
TINY_CLAP_TEXT_CONFIG: dict[str, Any] = {
    **OFFICIAL_CLAP_TEXT_CONFIG,
    "vocab_size": 320,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": CLAP_TEXT_MAX_LENGTH + 3,
    "projection_dim": 8,
}

"""Latents -> audio: AudioLDM's VAE (as diffusers ``AutoencoderKL``) and its 16 kHz HiFi-GAN (our
:class:`models.vocoders.hifigan.HiFiGANGenerator`).

``ckpts/ldm/pytorch_model_vae.bin`` is the state dict of AudioLDM's LDM ``AutoencoderKL``
(``encoder.down.*``, ``decoder.up.*``, ``mid.attn_1`` with 1x1-conv q/k/v, ...) with its vocoder
under ``vocoder.*`` (weight norm already removed: plain ``weight``). :func:`ldm_vae_to_diffusers`
renames the VAE part to diffusers' layout (the LDM decoder's ``up`` levels are numbered from the
lowest resolution, diffusers' ``up_blocks`` from the highest; attention 1x1 convs become linear
layers); the vocoder part loads into the HiFi-GAN generator, whose weight-normalised convolutions
take plain weights as ``g = ||w||, v = w``.

``decode``: ``latents / scale_factor`` -> VAE decoder -> log-mel ``[B, 1, 4T, 64]`` -> HiFi-GAN ->
``[B, 4T * 160 + 32]`` samples in (-1, 1) (the transposed-conv paddings add 32 samples).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
import torch.nn as nn

from models.core.checkpoints import CheckpointError, load_exact, load_generator_state
from models.core.random_init import init_random_weights
from models.core.weight_norm import fold_weight_norm
from models.picoaudio.configs import VAEConfig
from models.core.random_init import conv2d_and_groupnorm
from models.vocoders.configs import VocoderConfig
from models.vocoders.hifigan import HiFiGANGenerator

__all__ = ["AudioDecoder", "build_audio_decoder", "ldm_vae_to_diffusers", "split_vae_checkpoint"]

_VAE_PREFIXES = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")
_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def split_vae_checkpoint(state_dict: Mapping[str, torch.Tensor], source: str = "VAE checkpoint"
                         ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``pytorch_model_vae.bin`` -> (LDM VAE tensors, vocoder tensors without ``vocoder.``)."""
    vae, vocoder, other = {}, {}, []
    for key, value in state_dict.items():
        if key.startswith("vocoder."):
            vocoder[key[len("vocoder."):]] = value
        elif key.startswith(_VAE_PREFIXES):
            vae[key] = value
        else:
            other.append(key)
    if other:
        raise CheckpointError(f"{source}: keys outside AudioLDM's VAE layout: {sorted(other)[:20]}")
    return vae, vocoder


def _rename(key: str, levels: int) -> str:
    m = re.match(r"^encoder\.down\.(\d+)\.(block\.(\d+)|downsample)\.(.*)$", key)
    if m:
        inner = f"resnets.{m.group(3)}" if m.group(3) is not None else "downsamplers.0"
        key = f"encoder.down_blocks.{m.group(1)}.{inner}.{m.group(4)}"
    m = re.match(r"^decoder\.up\.(\d+)\.(block\.(\d+)|upsample)\.(.*)$", key)
    if m:
        inner = f"resnets.{m.group(3)}" if m.group(3) is not None else "upsamplers.0"
        key = f"decoder.up_blocks.{levels - 1 - int(m.group(1))}.{inner}.{m.group(4)}"
    m = re.match(r"^(encoder|decoder)\.mid\.block_([12])\.(.*)$", key)
    if m:
        key = f"{m.group(1)}.mid_block.resnets.{int(m.group(2)) - 1}.{m.group(3)}"
    m = re.match(r"^(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(.*)$", key)
    if m:
        key = f"{m.group(1)}.mid_block.attentions.0.{_ATTN[m.group(2)]}.{m.group(3)}"
    key = re.sub(r"\.nin_shortcut\.", ".conv_shortcut.", key)
    key = re.sub(r"^(encoder|decoder)\.norm_out\.", r"\1.conv_norm_out.", key)
    return key


def ldm_vae_to_diffusers(state_dict: Mapping[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """AudioLDM / LDM ``AutoencoderKL`` keys -> diffusers ``AutoencoderKL`` keys (``levels`` =
    ``len(ch_mult)``); the middle attention's 1x1 conv weights become linear weights."""
    out = {}
    for key, value in state_dict.items():
        new = _rename(key, levels)
        if ".mid_block.attentions.0.to_" in new and new.endswith(".weight") and value.ndim == 4:
            value = value[:, :, 0, 0]
        out[new] = value
    return out


class AudioDecoder(nn.Module):
    """The VAE and the vocoder, float32. ``decode``: latents -> waveform; ``decode_mel`` /
    ``vocode`` its two halves; ``encode``: mel -> posterior (for tests and analysis)."""

    def __init__(self, vae: nn.Module, vocoder: HiFiGANGenerator, scale_factor: float, vocoder_config: VocoderConfig
                 ) -> None:
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        self.vocoder = fold_weight_norm(vocoder.eval().requires_grad_(False))
        self.scale_factor = float(scale_factor)
        self.sample_rate = vocoder_config.mel.sample_rate
        self.hop_length = vocoder_config.mel.hop_length
        self.n_mels = vocoder_config.mel.n_mels

    @torch.inference_mode()
    def decode_mel(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, C, T, F]`` -> log-mel ``[B, 1, 4T, 64]`` (the reference's ``decode_first_stage``)."""
        return self.vae.decode(latents.float() / self.scale_factor).sample

    @torch.inference_mode()
    def vocode(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``[B, 1, frames, 64]`` -> ``[B, frames * 160 + 32]`` (the reference's
        ``decode_to_waveform`` before its int16 scaling)."""
        return self.vocoder(mel.squeeze(1).transpose(1, 2)).squeeze(1)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vocode(self.decode_mel(latents))

    @torch.inference_mode()
    def encode(self, mel: torch.Tensor, noise: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Log-mel ``[B, 1, T, 64]`` -> (mean, logvar (clamped to [-30, 20]), latents =
        ``scale_factor * (mean + std * noise)`` when ``noise`` is given)."""
        posterior = self.vae.encode(mel.float()).latent_dist
        latents = None if noise is None else self.scale_factor * (posterior.mean + posterior.std * noise)
        return posterior.mean, posterior.logvar, latents


def build_audio_decoder(vae_config: VAEConfig, vocoder_config: VocoderConfig,
                        state_dict: Mapping[str, torch.Tensor] | None = None, *, seed: int = 0,
                        source: str = "VAE checkpoint") -> AudioDecoder:
    """The decoder of the configs with ``state_dict`` (the ``pytorch_model_vae.bin`` layout,
    loaded strictly) or seeded random weights."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(**vae_config.diffusers_kwargs())
    vocoder = HiFiGANGenerator(vocoder_config.generator)
    if state_dict is None:
        init_random_weights(vae, seed, rules=(conv2d_and_groupnorm,))
        init_random_weights(vocoder, seed + 1)
    else:
        vae_sd, vocoder_sd = split_vae_checkpoint(state_dict, source)
        load_exact(vae, ldm_vae_to_diffusers(vae_sd, len(vae_config.channel_mult)), source)
        if not vocoder_sd:
            raise CheckpointError(f"{source}: no vocoder.* tensors (AudioLDM keeps its HiFi-GAN in the VAE file)")
        load_generator_state(vocoder, vocoder_sd, f"{source} (vocoder)")
    return AudioDecoder(vae, vocoder, vae_config.scale_factor, vocoder_config)

"""Amphion's mel VAE (``models/tta/autoencoder/autoencoder.py::AutoencoderKL``) as diffusers'
``AutoencoderKL``, with the key mapping between the two layouts.

The two are the same network: per level ResNet blocks (GroupNorm(32, eps 1e-6), SiLU, 3x3 convs,
1x1 shortcut when the width changes), zero-padded (0, 1, 0, 1) stride-2 downsampling, nearest x2 +
conv upsampling, a two-block middle without attention, 1x1 ``quant_conv`` / ``post_quant_conv``,
no scaling factor. Only the names differ (:func:`amphion_to_diffusers` / :func:`diffusers_to_amphion`;
the decoder's levels are numbered from the top in Amphion, from the bottom in diffusers).

:class:`MelVAE` is what the pipeline uses: ``decode(z [B, z, h, w]) -> mel [B, 1, 16h, 16w]`` (at the
official five levels) and ``encode(mel) -> Posterior`` (mean, logvar clamped to [-30, 20], std,
and ``sample(noise)``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from models.audioldm.configs import VAEConfig
from models.core.checkpoints import CheckpointError, load_exact

__all__ = ["MelVAE", "Posterior", "amphion_to_diffusers", "build_diffusers_vae", "diffusers_to_amphion"]

LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


def build_diffusers_vae(cfg: VAEConfig):
    """An untrained diffusers ``AutoencoderKL`` shaped like Amphion's VAE of ``cfg``."""
    from diffusers import AutoencoderKL

    levels = len(cfg.ch_mult)
    return AutoencoderKL(
        in_channels=cfg.in_channels,
        out_channels=cfg.out_ch,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(cfg.ch * m for m in cfg.ch_mult),
        layers_per_block=cfg.num_res_blocks,
        latent_channels=cfg.z_channels,
        norm_num_groups=32,
        mid_block_add_attention=False,
        scaling_factor=1.0,  # Amphion's TTA uses the latents unscaled
        force_upcast=False,
    )


# ---------------------------------------------------------------------------------------------
# key mapping
# ---------------------------------------------------------------------------------------------

# ResNet block parameter names that differ (everything else inside a block is the same).
_RESNET_RENAMES = {"nin_shortcut": "conv_shortcut"}
_RESNET_RENAMES_BACK = {v: k for k, v in _RESNET_RENAMES.items()}


def _rename_leaf(rest: str, renames: Mapping[str, str]) -> str:
    head, _, tail = rest.partition(".")
    return f"{renames.get(head, head)}.{tail}" if tail else renames.get(head, head)


def _amphion_key(key: str, levels: int) -> str | None:
    """Diffusers name of one Amphion key, or None when the key has no counterpart."""
    if key.split(".")[0] in ("quant_conv", "post_quant_conv"):
        return key
    m = re.fullmatch(r"(encoder|decoder)\.(conv_in|conv_out)\.(weight|bias)", key)
    if m:
        return key
    m = re.fullmatch(r"(encoder|decoder)\.norm_out\.(weight|bias)", key)
    if m:
        return f"{m[1]}.conv_norm_out.{m[2]}"
    m = re.fullmatch(r"(encoder|decoder)\.mid\.block_([12])\.(.+)", key)
    if m:
        return f"{m[1]}.mid_block.resnets.{int(m[2]) - 1}.{_rename_leaf(m[3], _RESNET_RENAMES)}"
    m = re.fullmatch(r"encoder\.down\.(\d+)\.block\.(\d+)\.(.+)", key)
    if m:
        return f"encoder.down_blocks.{m[1]}.resnets.{m[2]}.{_rename_leaf(m[3], _RESNET_RENAMES)}"
    m = re.fullmatch(r"encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)", key)
    if m:
        return f"encoder.down_blocks.{m[1]}.downsamplers.0.conv.{m[2]}"
    m = re.fullmatch(r"decoder\.up\.(\d+)\.block\.(\d+)\.(.+)", key)
    if m:
        return f"decoder.up_blocks.{levels - 1 - int(m[1])}.resnets.{m[2]}.{_rename_leaf(m[3], _RESNET_RENAMES)}"
    m = re.fullmatch(r"decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)", key)
    if m:
        return f"decoder.up_blocks.{levels - 1 - int(m[1])}.upsamplers.0.conv.{m[2]}"
    return None


def _diffusers_key(key: str, levels: int) -> str | None:
    """Amphion name of one diffusers key, or None when the key has no counterpart."""
    if key.split(".")[0] in ("quant_conv", "post_quant_conv"):
        return key
    if re.fullmatch(r"(encoder|decoder)\.(conv_in|conv_out)\.(weight|bias)", key):
        return key
    m = re.fullmatch(r"(encoder|decoder)\.conv_norm_out\.(weight|bias)", key)
    if m:
        return f"{m[1]}.norm_out.{m[2]}"
    m = re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.([01])\.(.+)", key)
    if m:
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{_rename_leaf(m[3], _RESNET_RENAMES_BACK)}"
    m = re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key)
    if m:
        return f"encoder.down.{m[1]}.block.{m[2]}.{_rename_leaf(m[3], _RESNET_RENAMES_BACK)}"
    m = re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(weight|bias)", key)
    if m:
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    m = re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key)
    if m:
        return f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}.{_rename_leaf(m[3], _RESNET_RENAMES_BACK)}"
    m = re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(weight|bias)", key)
    if m:
        return f"decoder.up.{levels - 1 - int(m[1])}.upsample.conv.{m[2]}"
    return None


def _convert(state_dict: Mapping[str, torch.Tensor], levels: int, rename, what: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new = rename(key, levels)
        if new is None:
            new = key  # no counterpart: kept as is, so a strict load names it as unexpected
        if new in out:
            raise CheckpointError(f"{what}: two keys map to {new!r}")
        out[new] = value
    return out


def amphion_to_diffusers(state_dict: Mapping[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """Amphion ``AutoencoderKL`` keys -> diffusers ``AutoencoderKL`` keys (``levels`` = len(ch_mult)).
    Keys without a counterpart pass through unchanged."""
    return _convert(state_dict, levels, _amphion_key, "Amphion VAE state dict")


def diffusers_to_amphion(state_dict: Mapping[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """The inverse of :func:`amphion_to_diffusers` (writes checkpoints laid out like the official one)."""
    return _convert(state_dict, levels, _diffusers_key, "diffusers VAE state dict")


# ---------------------------------------------------------------------------------------------
# the pipeline's view of the VAE
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Posterior:
    """The diagonal Gaussian ``encode`` returns (Amphion's ``DiagonalGaussianDistribution``)."""

    mean: torch.Tensor
    logvar: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """``mean + std * noise`` with the caller's standard-normal ``noise``."""
        return self.mean + self.std * noise.to(self.mean)


class MelVAE(torch.nn.Module):
    """diffusers' ``AutoencoderKL`` (``model``) with Amphion's calling conventions."""

    def __init__(self, cfg: VAEConfig, model=None) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = build_diffusers_vae(cfg) if model is None else model

    @property
    def levels(self) -> int:
        return len(self.cfg.ch_mult)

    def load_amphion_state_dict(self, state_dict: Mapping[str, torch.Tensor], source: str = "VAE checkpoint") -> None:
        """Strict load of an Amphion-layout state dict (missing / unexpected keys are errors)."""
        load_exact(self.model, amphion_to_diffusers(state_dict, self.levels), source)

    def amphion_state_dict(self) -> dict[str, torch.Tensor]:
        """This VAE's weights under Amphion's key names."""
        return diffusers_to_amphion(self.model.state_dict(), self.levels)

    def encode(self, mel: torch.Tensor) -> Posterior:
        moments = self.model.quant_conv(self.model.encoder(mel))
        mean, logvar = moments.chunk(2, dim=1)
        return Posterior(mean, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decoder(self.model.post_quant_conv(z))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode(z)

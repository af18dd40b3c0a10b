"""The SVC recipes' vocoder: Amphion's singing BigVGAN (``amphion/BigVGAN_singing_bigdata``), 24 kHz,
100 mel bins, hop 256, the same log-mel as the SVC front ends (fmax 12 kHz).

It is :class:`models.vocoders.vocoder.Vocoder` with Amphion's BigVGAN class (tanh and a biased
``conv_post``, ``models/vocoders/README.md``); this module only says where its files are and what
its tiny stand-in looks like:

* :func:`load_singing_vocoder`: a folder laid out like the repo (``bigvgan_singing/args.json`` +
  the highest-step ``*.pt``, ``{"generator_state_dict": ...}``), read by
  :func:`models.vocoders.checkpoints.load_official` and loaded strictly.
* :func:`build_singing_vocoder`: seeded random weights in the release's stage layout (upsampling
  4, 4, 2, 2, 2, 2 with kernels 8, 8, 4, 4, 4, 4; AMP blocks 3 / 7 / 11, SnakeBeta) at 64 channels
  instead of 1536.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.audio.mel import MelConfig
from models.vocoders.checkpoints import load_official
from models.vocoders.configs import BigVGANConfig, VocoderConfig
from models.vocoders.vocoder import Vocoder, build_vocoder

__all__ = ["SAMPLE_RATE", "build_singing_vocoder", "load_singing_vocoder", "tiny_singing_vocoder_config"]

SAMPLE_RATE = 24000
#: The SVC recipes' mel (``preprocess`` of the release's args.json): what the vocoder was trained on.
SVC_MEL = MelConfig(sample_rate=SAMPLE_RATE, n_fft=1024, hop_length=256, win_length=1024, n_mels=100,
                    fmin=0.0, fmax=12000.0)
#: Channels of the tiny stand-in: the smallest that six halving stages leave at least one of.
TINY_CHANNELS = 64


def tiny_singing_vocoder_config() -> VocoderConfig:
    """The release's layout (``bigvgan_large`` recipe) at :data:`TINY_CHANNELS` channels."""
    generator = BigVGANConfig(
        n_mels=SVC_MEL.n_mels, upsample_rates=(4, 4, 2, 2, 2, 2), upsample_kernel_sizes=(8, 8, 4, 4, 4, 4),
        upsample_initial_channel=TINY_CHANNELS, resblock="1", resblock_kernel_sizes=(3, 7, 11),
        resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)), activation="snakebeta", snake_logscale=True,
        use_tanh_at_final=True, use_bias_at_final=True,  # Amphion's class, whatever its config says
    )
    return VocoderConfig(name="bigvgan", generator=generator, mel=SVC_MEL, source_format="tiny")


def build_singing_vocoder(*, seed: int = 0, device: str | torch.device = "cpu") -> Vocoder:
    """The tiny stand-in with seeded random weights."""
    return build_vocoder("bigvgan", config=tiny_singing_vocoder_config(), seed=seed, device=device,
                         note=f"tiny singing BigVGAN, seeded random weights (seed {seed})")


def load_singing_vocoder(root: str | Path, *, device: str | torch.device = "cpu", note: str = "") -> Vocoder:
    """The singing BigVGAN from a folder laid out like ``amphion/BigVGAN_singing_bigdata``; ``note``
    (user-safe) replaces the loader's description, which holds server paths."""
    config, state_dict, where = load_official("bigvgan", root)
    vocoder = build_vocoder("bigvgan", config=config, state_dict=state_dict, device=device, note=where)
    vocoder.note = note or "Amphion singing BigVGAN"
    return vocoder

"""Noro's vocoder: a BigVGAN-architecture generator at Noro's mel setting (16 kHz, 80 bands, hop 200).

Amphion's Noro README says only "use BigVGAN to construct the wav file": the vocoder it pairs with
is unpublished and comes from the user with Noro's weights. The generator is
:class:`models.vocoders.bigvgan.BigVGANGenerator`; what is Noro-specific is data here: the mel it takes
(:data:`NORO_VOCODER_MEL`, Noro's own output mel) and a tiny generator whose upsampling rates multiply
to the 200-sample hop. A real vocoder folder is read by :func:`models.vocoders.checkpoints.load_official`
(NVIDIA's ``config.json`` + ``bigvgan_generator.pt``, or an Amphion ``args.json`` + checkpoint), and
its config must describe 16 kHz / 80 bands / hop 200.
"""

from __future__ import annotations

from pathlib import Path

from models.core.checkpoints import CheckpointError
from models.noro.mel import NORO_MEL
from models.vocoders.checkpoints import load_official
from models.vocoders.configs import BigVGANConfig, VocoderConfig
from models.vocoders.vocoder import Vocoder, build_vocoder

__all__ = ["NORO_VOCODER_MEL", "TINY_VOCODER_CONFIG", "build_noro_vocoder", "check_vocoder_fits", "load_noro_vocoder"]

#: What the vocoder must take: the mel Noro generates.
NORO_VOCODER_MEL = NORO_MEL

#: A small random-weight stand-in: BigVGAN's AMP blocks with SnakeBeta (NVIDIA v2's ending), stages
#: 5 x 5 x 4 x 2 = 200 samples per frame.
TINY_VOCODER_CONFIG = VocoderConfig(
    name="bigvgan",
    generator=BigVGANConfig(
        n_mels=NORO_VOCODER_MEL.n_mels, upsample_rates=(5, 5, 4, 2), upsample_kernel_sizes=(10, 10, 8, 4),
        upsample_initial_channel=32, resblock="1", resblock_kernel_sizes=(3, 7, 11),
        resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)), activation="snakebeta", snake_logscale=True,
        use_tanh_at_final=False, use_bias_at_final=False,
    ),
    mel=NORO_VOCODER_MEL,
    source_format="tiny",
)


def check_vocoder_fits(config: VocoderConfig, source: str) -> None:
    """:class:`CheckpointError` unless ``config`` takes Noro's mel (rate, bands, hop)."""
    mel = config.mel
    want = (NORO_VOCODER_MEL.sample_rate, NORO_VOCODER_MEL.n_mels, NORO_VOCODER_MEL.hop_length)
    got = (mel.sample_rate, mel.n_mels, mel.hop_length)
    if got != want:
        raise CheckpointError(f"{source}: the vocoder takes {got[0]} Hz / {got[1]} bands / hop {got[2]}; Noro "
                              f"generates {want[0]} Hz / {want[1]} bands / hop {want[2]}")


def build_noro_vocoder(*, seed: int = 0, device: str = "cpu") -> Vocoder:
    """The tiny vocoder (seeded random weights)."""
    return build_vocoder("bigvgan", config=TINY_VOCODER_CONFIG, seed=seed, device=device)


def load_noro_vocoder(folder: str | Path, *, device: str = "cpu") -> Vocoder:
    """The user's BigVGAN from a folder laid out like NVIDIA's release (``config.json`` +
    ``bigvgan_generator.pt``) or an Amphion experiment folder; strict key checks."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"Noro vocoder folder not found: {folder} (expected config.json + bigvgan_generator.pt)")
    config, state_dict, where = load_official("bigvgan", folder)
    check_vocoder_fits(config, where)
    return build_vocoder("bigvgan", config=config, state_dict=state_dict, device=device, note=where)

"""Vevo's vocoder: Amphion's ``Vocos`` (ConvNeXt backbone + ISTFT head) on the normalised 24 kHz mel.

:meth:`VevoVocoder.vocode` turns ``[B, T, n_mels]`` into ``T * 480`` samples at 24 kHz (``forward``
takes ``[B, n_mels, T]``, as the reference calls it). ``build_vocoder`` makes a tiny seeded one,
``load_vocoder`` strictly loads the official weights (``acoustic_modeling/Vocoder/model.safetensors``
of ``amphion/Vevo``, or of ``amphion/Vevo1.5``: same architecture, other weights). Sizes and keys:
``models/vevo/README.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from models.blocks.vocos import Vocos
from models.core.checkpoints import CheckpointError, load_exact, load_state_dict_file
from models.core.configs import read_config
from models.core.random_init import init_random_weights
from models.vevo.configs import (
    VocosVocoderConfig,
    official_vocoder_config,
    parse_vocoder_config,
)

__all__ = [
    "VOCODER_WEIGHTS_FILE",
    "VevoVocoder",
    "build_vocoder",
    "load_vocoder",
    "tiny_vocoder_config",
]

#: Relative path of the generator weights in both amphion/Vevo and amphion/Vevo1.5.
VOCODER_WEIGHTS_FILE = "acoustic_modeling/Vocoder/model.safetensors"
SAMPLE_RATE = 24000


def tiny_vocoder_config() -> VocosVocoderConfig:
    """Official I/O contract (128 mels, n_fft 1920, hop 480: 24 kHz from a 50 Hz mel), small backbone."""
    return VocosVocoderConfig(input_channels=128, dim=16, intermediate_dim=32, num_layers=2, n_fft=1920,
                              hop_size=480, padding="same")


class VevoVocoder(Vocos):
    """Normalised mel -> 24 kHz waveform. Same state-dict keys as the reference ``Vocos``."""

    def __init__(self, config: VocosVocoderConfig, sample_rate: int = SAMPLE_RATE) -> None:
        super().__init__(config.input_channels, config.dim, config.intermediate_dim, config.num_layers,
                         config.n_fft, config.hop_size, config.padding)
        self.config = config
        self.sample_rate = sample_rate

    @property
    def n_mels(self) -> int:
        return self.config.input_channels

    @torch.inference_mode()
    def vocode(self, mel: torch.Tensor) -> torch.Tensor:
        """``mel`` ``[B, T, n_mels]`` (normalised, as the FM model predicts it) -> waveform ``[B, T * hop]``.

        Padded batches: item ``i`` with ``T_i`` valid frames owns the first ``T_i * hop`` samples; the
        ConvNeXt kernels (k7 per layer) let padding frames touch the last few frames' samples, so pad
        with a neutral value or vocode ragged items separately when that matters."""
        if mel.dim() != 3 or mel.shape[-1] != self.n_mels:
            raise ValueError(f"expected a normalised mel [B, T, {self.n_mels}], got {tuple(mel.shape)}")
        weight = self.head.out.weight
        return self(mel.to(device=weight.device, dtype=weight.dtype).transpose(1, 2))[:, 0]


def build_vocoder(
    config: VocosVocoderConfig | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    source: str = "vocoder state dict",
) -> VevoVocoder:
    """The vocoder from ``config`` (None: :func:`tiny_vocoder_config`) and a state dict (None: seeded
    random weights), in eval mode on ``device``. Loading is strict (readable missing/unexpected keys)."""
    model = VevoVocoder(tiny_vocoder_config() if config is None else config)
    if state_dict is None:
        init_random_weights(model, seed)
    else:
        load_exact(model, state_dict, source)
    return model.eval().requires_grad_(False).to(device)


def load_vocoder(
    root: str | Path,
    config: VocosVocoderConfig | str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
) -> VevoVocoder:
    """The vocoder from a folder laid out like ``amphion/Vevo`` or ``amphion/Vevo1.5``
    (:data:`VOCODER_WEIGHTS_FILE`), or from the weights file itself. ``config``: a parsed config, the path
    of a ``Vocoder.json``, or None for the official configuration."""
    root = Path(root)
    path = root if root.is_file() else root / VOCODER_WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{root} is not laid out like amphion/Vevo: {VOCODER_WEIGHTS_FILE} is missing")
    if config is None:
        config = official_vocoder_config()
    elif not isinstance(config, VocosVocoderConfig):
        config = parse_vocoder_config(read_config(config))
    return build_vocoder(config, load_state_dict_file(path), device=device, source=str(path))

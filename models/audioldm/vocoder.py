"""The TTA vocoder: the jik876 HiFi-GAN V1 generator of ``hifigan_checkpoints/`` (16 kHz, 80 bins,
hop 256), run by the vocoder family's ``HiFiGANGenerator``.

jik876's ``Generator`` and Amphion's HiFi-GAN are the same network under the same parameter names
(``conv_pre``, ``ups.N``, ``resblocks.N.convs1/convs2.M``, ``conv_post``, weight norm as
``weight_g`` / ``weight_v``, the final leaky ReLU at slope 0.01, tanh), so the official
``{"generator": state_dict}`` loads strictly with no key mapping; only the config format (jik876's
flat ``config.json``) and the hard-coded 80 input bins differ, both handled by
:func:`models.audioldm.configs.parse_vocoder_config`. Weight norm is folded once at load (what the
reference's ``remove_weight_norm()`` computes).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from models.core.checkpoints import load_generator_state
from models.core.weight_norm import fold_weight_norm
from models.vocoders.configs import VocoderConfig
from models.vocoders.hifigan import HiFiGANGenerator

__all__ = ["TTAVocoder"]


class TTAVocoder(torch.nn.Module):
    """``forward(mel [B, 80, T]) -> audio [B, 1, T * hop]`` in (-1, 1); the generator is ``generator``."""

    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = HiFiGANGenerator(config.generator)

    @property
    def sample_rate(self) -> int:
        return self.config.mel.sample_rate

    @property
    def hop_length(self) -> int:
        return self.generator.upsample_factor

    @property
    def n_mels(self) -> int:
        return self.config.generator.n_mels

    def load_generator(self, state_dict: Mapping[str, torch.Tensor], source: str = "vocoder checkpoint") -> None:
        """Strict load (weight-norm keys adapted if saved without), then fold weight norm."""
        load_generator_state(self.generator, state_dict, source)
        fold_weight_norm(self.generator)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.generator(mel)

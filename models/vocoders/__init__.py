"""Pure-PyTorch vocoders: NVIDIA BigVGAN v2, Amphion HiFi-GAN and Amphion NSF-HiFiGAN.

Deployments use :func:`load_vocoder` (official weights via ``models.weights``, or a tiny seeded
stand-in) and the :class:`Vocoder` it returns (``analyse`` / ``pitch`` / ``vocode``).
"""

from models.vocoders.configs import VOCODER_NAMES, VocoderConfig, parse_config, tiny_config
from models.vocoders.official import OFFICIAL
from models.vocoders.vocoder import Vocoder, build_vocoder, load_vocoder

__all__ = [
    "VOCODER_NAMES",
    "OFFICIAL",
    "Vocoder",
    "VocoderConfig",
    "build_vocoder",
    "load_vocoder",
    "parse_config",
    "tiny_config",
]

"""FACodec, NaturalSpeech 3's factorised codec (Amphion ``models/codec/ns3_codec``, Hugging Face
``amphion/naturalspeech3_facodec``), in pure PyTorch, inference only.

16 kHz mono audio <-> per frame (80 Hz) 1 prosody, 2 content and 3 acoustic-detail codes (1024
entries each) plus one 256-dim timbre vector per clip. :class:`FACodec` is the serving API
(:func:`load_facodec`, :meth:`FACodec.from_folder`, :meth:`FACodec.tiny`); :class:`FACodecEncoder` /
:class:`FACodecDecoder` are the reference modules with the official key layout. Reference notes:
``models/facodec/README.md``.
"""

from models.facodec.checkpoints import CheckpointError, build_facodec_decoder, build_facodec_encoder
from models.facodec.codec import FACodec, load_facodec
from models.facodec.configs import (
    FACODEC_SAMPLE_RATE,
    ConfigError,
    FACodecConfig,
    official_facodec_config,
    parse_facodec_config,
    read_facodec_config,
    tiny_facodec_config,
)
from models.facodec.decoder import FACodecDecoder
from models.facodec.encoder import FACodecEncoder
from models.facodec.official import FACODEC_HUB_FILES

__all__ = [
    "FACODEC_HUB_FILES",
    "FACODEC_SAMPLE_RATE",
    "CheckpointError",
    "ConfigError",
    "FACodec",
    "FACodecConfig",
    "FACodecDecoder",
    "FACodecEncoder",
    "build_facodec_decoder",
    "build_facodec_encoder",
    "load_facodec",
    "official_facodec_config",
    "parse_facodec_config",
    "read_facodec_config",
    "tiny_facodec_config",
]

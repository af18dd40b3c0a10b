"""MaskGCT (Amphion) in pure PyTorch. So far: its two codecs.

* semantic codec (RepCodec): normalised w2v-bert-2.0 features ``[B, T, 1024]`` <-> semantic tokens
  ``[B, T]`` (8192 codes, 50 Hz);
* acoustic codec: 24 kHz waveform ``[B, 1, L]`` <-> acoustic tokens ``[B, T, 12]`` (12 RVQ layers of
  1024 codes, 50 Hz) through :class:`CodecEncoder` and :class:`CodecDecoder`.

Build them with :func:`load_maskgct_codecs` (official weights via ``models.weights``, or tiny seeded
stand-ins), :func:`load_semantic_codec` / :func:`load_acoustic_codec` (a folder laid out like the
``amphion/MaskGCT`` repo) or the ``build_*`` functions (config + state dict).
"""

from models.maskgct.acoustic_codec import AcousticCodec, CodecDecoder, CodecEncoder
from models.maskgct.checkpoints import (
    OFFICIAL,
    CheckpointError,
    build_acoustic_codec,
    build_codec_decoder,
    build_codec_encoder,
    build_semantic_codec,
    load_acoustic_codec,
    load_maskgct_codecs,
    load_semantic_codec,
)
from models.maskgct.configs import (
    AcousticCodecConfig,
    AcousticDecoderConfig,
    AcousticEncoderConfig,
    ConfigError,
    SemanticCodecConfig,
    parse_acoustic_codec_config,
    parse_acoustic_decoder_config,
    parse_acoustic_encoder_config,
    parse_semantic_codec_config,
    tiny_acoustic_codec_config,
    tiny_semantic_codec_config,
)
from models.maskgct.semantic_codec import SemanticCodec

__all__ = [
    "OFFICIAL",
    "AcousticCodec",
    "AcousticCodecConfig",
    "AcousticDecoderConfig",
    "AcousticEncoderConfig",
    "CheckpointError",
    "CodecDecoder",
    "CodecEncoder",
    "ConfigError",
    "SemanticCodec",
    "SemanticCodecConfig",
    "build_acoustic_codec",
    "build_codec_decoder",
    "build_codec_encoder",
    "build_semantic_codec",
    "load_acoustic_codec",
    "load_maskgct_codecs",
    "load_semantic_codec",
    "parse_acoustic_codec_config",
    "parse_acoustic_decoder_config",
    "parse_acoustic_encoder_config",
    "parse_semantic_codec_config",
    "tiny_acoustic_codec_config",
    "tiny_semantic_codec_config",
]

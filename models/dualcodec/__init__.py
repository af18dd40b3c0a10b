"""DualCodec (``jiaqili3/DualCodec``, HF ``amphion/dualcodec``) in pure PyTorch: a 24 kHz speech codec
with one semantic codebook (from w2v-bert-2.0 features) and a DAC residual VQ for the acoustic rest.

Models ``12hz_v1`` and ``25hz_v1``: :func:`load_dualcodec_model` gives the codec (``encode`` /
``decode``) and its :class:`SemanticNormPool` (w2v-bert layer 17 -> the codec's semantic input).
Model table, usage and reference notes: ``models/dualcodec/README.md``.
"""

from models.dualcodec.checkpoints import (
    CheckpointError,
    LoadedDualCodec,
    build_dualcodec,
    build_tiny_dualcodec,
    load_dualcodec,
    load_dualcodec_model,
    load_dualcodec_stats,
)
from models.dualcodec.configs import (
    MODEL_IDS,
    ConfigError,
    DualCodecConfig,
    official_config,
    parse_dualcodec_config,
    read_dualcodec_config,
    tiny_config,
)
from models.dualcodec.model import DualCodec
from models.dualcodec.official import OFFICIAL
from models.dualcodec.semantic import (
    SemanticNormPool,
    frame_counts,
    load_semantic_stats,
    resample_for_w2v_bert,
)

__all__ = [
    "MODEL_IDS",
    "OFFICIAL",
    "CheckpointError",
    "ConfigError",
    "DualCodec",
    "DualCodecConfig",
    "LoadedDualCodec",
    "SemanticNormPool",
    "build_dualcodec",
    "build_tiny_dualcodec",
    "frame_counts",
    "load_dualcodec",
    "load_dualcodec_model",
    "load_dualcodec_stats",
    "load_semantic_stats",
    "official_config",
    "parse_dualcodec_config",
    "read_dualcodec_config",
    "resample_for_w2v_bert",
    "tiny_config",
]

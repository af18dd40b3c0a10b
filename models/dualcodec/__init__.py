"""DualCodec (``jiaqili3/DualCodec``, HF ``amphion/dualcodec``) in pure PyTorch: a 24 kHz speech codec
with one semantic codebook (from w2v-bert-2.0 features) and a DAC residual VQ for the acoustic rest.

=============  ==========  =======  ============  ===============  =========================
model id       frame rate  hop      semantic CB   acoustic RVQ     ``num_quantizers``
=============  ==========  =======  ============  ===============  =========================
``12hz_v1``    12.5 Hz     1920     16384         7 x 4096         1..8
``25hz_v1``    25 Hz       960      16384         11 x 1024        1..12
=============  ==========  =======  ============  ===============  =========================

Use::

    loaded = load_dualcodec_model("12hz_v1", "auto")          # or load_dualcodec(folder, "12hz_v1")
    semantic_repr = loaded.semantic_norm_pool(hidden17)       # [B, F, 1024] w2v-bert -> [B, 1024, T]
    sem, ac = loaded.codec.encode(audio_24k, semantic_repr, num_quantizers=8)   # [B,1,T], [B,7,T]
    audio = loaded.codec.decode(sem, ac)                       # [B, 1, T * hop - 4]

See :mod:`models.dualcodec.semantic` for the w2v-bert front end and the frame-count arithmetic.
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

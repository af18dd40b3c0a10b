"""Where DualCodec's official files live (:data:`OFFICIAL`, for ``models.weights.resolve`` /
``download``): per model id its checkpoint (:data:`CHECKPOINT_FILES`) and the shared stats file
(:data:`STATS_FILE`) in ``amphion/dualcodec``, and the w2v-bert-2.0 files (:data:`W2V_BERT_FILES`).
The table: ``models/dualcodec/README.md``.
"""

from __future__ import annotations

from models.dualcodec.configs import MODEL_IDS
# DualCodec's semantic branch is MaskGCT's w2v-bert-2.0 encoder: the same model files.
from models.maskgct.semantic_encoder import W2V_BERT_FILES
from models.weights import HubFiles

__all__ = ["CHECKPOINT_FILES", "OFFICIAL", "OFFICIAL_REPO_ID", "STATS_FILE", "W2V_BERT_FILES"]

OFFICIAL_REPO_ID = "amphion/dualcodec"
STATS_FILE = "w2vbert2_mean_var_stats_emilia.pt"
CHECKPOINT_FILES: dict[str, str] = {
    "12hz_v1": "dualcodec_12hz_16384_4096.safetensors",
    "25hz_v1": "dualcodec_25hz_16384_1024.safetensors",
}

#: Model id -> its checkpoint and the stats file.
OFFICIAL: dict[str, HubFiles] = {
    model_id: HubFiles(repo_id=OFFICIAL_REPO_ID, patterns=(CHECKPOINT_FILES[model_id], STATS_FILE))
    for model_id in MODEL_IDS
}

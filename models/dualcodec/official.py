"""Where DualCodec's official files live (for ``models.weights.resolve`` / ``download``).

Hugging Face ``amphion/dualcodec`` (``dualcodec.get_model`` / ``dualcodec.Inference`` read these names):

==============  =========================================  ==========================================
model id        checkpoint (flat safetensors, fp32)        also needed
==============  =========================================  ==========================================
``12hz_v1``     ``dualcodec_12hz_16384_4096.safetensors``  ``w2vbert2_mean_var_stats_emilia.pt``
``25hz_v1``     ``dualcodec_25hz_16384_1024.safetensors``  ``w2vbert2_mean_var_stats_emilia.pt``
==============  =========================================  ==========================================

The stats file (``{"mean", "var"}`` of w2v-bert-2.0 ``hidden_states[17]``) is shared by both models;
the features themselves come from ``facebook/w2v-bert-2.0`` (:data:`W2V_BERT_FILES`, the same files
MaskGCT's semantic encoder loads). The repo's other files (discriminators, at an older revision) are
never fetched.
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

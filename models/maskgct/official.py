"""Where the official files of every MaskGCT component live (:data:`OFFICIAL_PIPELINE_FILES`, for
``models.weights.resolve`` / ``download``), one entry per component so that each can be resolved
and deployed on its own. The table and the pinned statistics file: ``models/maskgct/README.md``.
"""

from __future__ import annotations

from models.maskgct.checkpoints import OFFICIAL as _CODECS
from models.maskgct.s2a import S2A_HUB_FILES
from models.maskgct.semantic_encoder import SEMANTIC_STATS_FILES, W2V_BERT_FILES
from models.maskgct.t2s import T2S_HUB_FILES
from models.weights import HubFiles

__all__ = ["OFFICIAL_PIPELINE_FILES", "PIPELINE_COMPONENTS"]

OFFICIAL_PIPELINE_FILES: dict[str, HubFiles] = {
    "w2v_bert": W2V_BERT_FILES,
    "semantic_stats": SEMANTIC_STATS_FILES,
    "semantic_codec": _CODECS["maskgct_semantic_codec"],
    "acoustic_codec": _CODECS["maskgct_acoustic_codec"],
    "t2s": T2S_HUB_FILES,
    "s2a": S2A_HUB_FILES,
}

#: The keys above, in the order the pipeline runs them.
PIPELINE_COMPONENTS: tuple[str, ...] = tuple(OFFICIAL_PIPELINE_FILES)

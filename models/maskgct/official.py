"""Where the official files of the whole MaskGCT pipeline live (for ``models.weights.resolve`` /
``download``), one entry per component so that each can be resolved (and deployed) on its own.

=================  ==========================  =========================================================
key                repo                        files
=================  ==========================  =========================================================
``w2v_bert``       ``facebook/w2v-bert-2.0``   config.json, preprocessor_config.json, model.safetensors
``semantic_stats`` Amphion's GitHub repository  models/tts/maskgct/ckpt/wav2vec2bert_stats.pt (pinned)
``semantic_codec`` ``amphion/MaskGCT``         semantic_codec/model.safetensors
``acoustic_codec`` ``amphion/MaskGCT``         acoustic_codec/model.safetensors, acoustic_codec/model_1.safetensors
``t2s``            ``amphion/MaskGCT``         t2s_model/model.safetensors
``s2a``            ``amphion/MaskGCT``         s2a_model/s2a_model_{1layer,full}/model.safetensors
=================  ==========================  =========================================================

The stats file (9 KB: ``mean`` and ``var`` of the layer-17 features) ships with Amphion's code
(``models/tts/maskgct/ckpt/wav2vec2bert_stats.pt``, also in the HF *Space* ``amphion/maskgct``), not in a
Hugging Face model repo: it is fetched from the repository at the pinned commit and hash-checked
(``models.pinned``), or read from ``$AMPHION_MASKGCT_STATS_DIR``.
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

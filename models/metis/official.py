"""Where Metis' official files live (Hugging Face ``amphion/metis``, plus MaskGCT's parts).

Stage 1 per task (:data:`STAGE1_FILES`); everything else (w2v-bert-2.0 and its statistics, the
semantic codec, the acoustic codec, the two S2A models, and the TTS stage-1 model, which IS MaskGCT's
T2S) comes from :data:`models.maskgct.official.OFFICIAL_PIPELINE_FILES`.
"""

from __future__ import annotations

from models.maskgct.t2s import T2S_HUB_FILES
from models.weights import HubFiles

__all__ = ["HUB_REPO", "LORA_RELEASES", "OMNI_FILE", "STAGE1_FILES", "BASE_FILE", "L2S_FILE"]

HUB_REPO = "amphion/metis"
BASE_FILE = "metis_base/model.safetensors"
OMNI_FILE = "metis_omni/metis_omni.safetensors"
L2S_FILE = "metis_l2s/metis_l2s.safetensors"   # not served: its visual encoder is not released

#: task -> (LoRA file, adapter file) in ``amphion/metis``; merged into ``BASE_FILE`` at load.
LORA_RELEASES: dict[str, tuple[str, str]] = {
    "vc": ("metis_vc/metis_vc_lora_16.safetensors", "metis_vc/metis_vc_lora_16_adapter.safetensors"),
    "se": ("metis_se/metis_se_lora_32.safetensors", "metis_se/metis_se_lora_32_adapter.safetensors"),
    "tse": ("metis_tse/metis_tse_lora_32.safetensors", "metis_tse/metis_tse_lora_32_adapter.safetensors"),
}

#: The stage-1 files each task loads.
STAGE1_FILES: dict[str, HubFiles] = {
    "tts": T2S_HUB_FILES,  # amphion/MaskGCT t2s_model/model.safetensors (Metis' TTS uses MaskGCT's T2S)
    **{task: HubFiles(repo_id=HUB_REPO, patterns=(BASE_FILE, *files), local_dir_env="AMPHION_METIS_DIR")
       for task, files in LORA_RELEASES.items()},
    "omni": HubFiles(repo_id=HUB_REPO, patterns=(OMNI_FILE,), local_dir_env="AMPHION_METIS_DIR"),
}

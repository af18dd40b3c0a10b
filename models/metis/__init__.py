"""Metis (Amphion): masked generative pre-training for speech generation, fine-tuned per task
(TTS, VC, SE, TSE; omni), on top of MaskGCT's parts. See ``models/metis/README.md``."""

from models.metis.configs import (
    MetisConfigError,
    MetisStage1Config,
    official_stage1_config,
    parse_stage1_config,
    read_stage1_config,
    tiny_stage1_config,
)
from models.metis.lora import LoraMergeError, load_lora_stage1, merge_lora_state
from models.metis.official import LORA_RELEASES, STAGE1_FILES
from models.metis.orchestration import MetisInputError, MetisOrchestrator
from models.metis.pipeline import MetisPipeline, load_stage1_models
from models.metis.stage1 import MetisStage1, build_stage1, load_stage1
from models.metis.tasks import (
    STAGE1_SETTINGS,
    STAGE2_1LAYER,
    STAGE2_FULL,
    TASKS,
    metis_language,
    stage2_steps,
    target_len_from_seconds,
    tts_target_len,
)

__all__ = [
    "LORA_RELEASES",
    "STAGE1_FILES",
    "STAGE1_SETTINGS",
    "STAGE2_1LAYER",
    "STAGE2_FULL",
    "TASKS",
    "LoraMergeError",
    "MetisConfigError",
    "MetisInputError",
    "MetisOrchestrator",
    "MetisPipeline",
    "MetisStage1",
    "MetisStage1Config",
    "build_stage1",
    "load_lora_stage1",
    "load_stage1",
    "load_stage1_models",
    "merge_lora_state",
    "metis_language",
    "official_stage1_config",
    "parse_stage1_config",
    "read_stage1_config",
    "stage2_steps",
    "target_len_from_seconds",
    "tiny_stage1_config",
    "tts_target_len",
]

"""Metis' per-task recipes, as the reference's scripts run them (``models/tts/metis/metis_infer_*.py``
and ``Metis.__call__`` / ``text2semantic`` / ``semantic2acoustic``).

* Stage-1 settings per task (:data:`STAGE1_SETTINGS`).
* Stage-2 (MaskGCT's S2A) settings, fixed by Metis: the 1-layer model with ``[40]`` steps and **cfg 0**,
  then the full model with ``[40, 16, 1, ...]`` steps and cfg 2.5 (:data:`STAGE2_1LAYER`, :data:`STAGE2_FULL`).
* The TTS front end: the target length rule :func:`tts_target_len` (prompt tokens x UTF-8 bytes of
  the text / bytes of the prompt text) and the language fallback :func:`metis_language`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "METIS_LANGUAGES",
    "STAGE1_SETTINGS",
    "STAGE2_1LAYER",
    "STAGE2_FULL",
    "TASKS",
    "Stage1Settings",
    "Stage2Settings",
    "metis_language",
    "stage2_steps",
    "target_len_from_seconds",
    "tts_target_len",
]

TASKS = ("tts", "vc", "se", "tse")
FRAME_RATE = 50  # semantic tokens per second


@dataclass(frozen=True)
class Stage1Settings:
    n_timesteps: int
    cfg: float
    rescale_cfg: float = 0.75
    temp: float = 0.9
    filter_thres: float = 0.98
    uses_prompt: bool = True       # SE runs with an empty (1, 0) prompt
    uses_phones: bool = False      # TTS only
    uses_features: bool = True     # finetune_cond: VC / SE / TSE


STAGE1_SETTINGS: dict[str, Stage1Settings] = {
    "tts": Stage1Settings(n_timesteps=25, cfg=2.5, uses_phones=True, uses_features=False),
    "vc": Stage1Settings(n_timesteps=20, cfg=1.0),
    "tse": Stage1Settings(n_timesteps=10, cfg=0.0),
    "se": Stage1Settings(n_timesteps=10, cfg=0.0, uses_prompt=False),
}


@dataclass(frozen=True)
class Stage2Settings:
    cfg: float
    rescale_cfg: float = 0.75
    temp: float = 1.5
    filter_thres: float = 0.98


STAGE2_1LAYER = Stage2Settings(cfg=0.0)
STAGE2_FULL = Stage2Settings(cfg=2.5)
STAGE2_FIRST_STEPS = 40
STAGE2_SECOND_STEPS = 16


def stage2_steps(num_quantizers: int) -> tuple[list[int], list[int]]:
    """``([40], [40, 16, 1, ..., 1])``: the 1-layer model's and the full model's step counts."""
    full = [STAGE2_FIRST_STEPS, STAGE2_SECOND_STEPS] + [1] * max(0, num_quantizers - 2)
    return [STAGE2_FIRST_STEPS], full[:num_quantizers]


#: The languages Metis' G2P accepts; langid's other answers fall back to ``en``.
METIS_LANGUAGES = ("zh", "en", "ja", "fr", "ko", "de")


def metis_language(detected: str) -> str:
    """The reference's rule after ``langid.classify``: the code if Metis knows it, else ``en``."""
    return detected if detected in METIS_LANGUAGES else "en"


def tts_target_len(prompt_tokens: int, text: str, prompt_text: str) -> int:
    """Metis' TTS target length in semantic frames:
    ``prompt_tokens * len(text.encode('utf-8')) // len(prompt_text.encode('utf-8'))`` (integer floor).
    (MaskGCT's own rule uses phone counts and the reference's duration instead.)"""
    prompt_bytes = len(prompt_text.encode("utf-8"))
    if prompt_bytes == 0:
        raise ValueError("the prompt text is empty: Metis' target length rule divides by its length")
    return int(prompt_tokens) * len(text.encode("utf-8")) // prompt_bytes


def target_len_from_seconds(seconds: float) -> int:
    """``int(seconds * 50)``, the reference's rule when a duration is given (with a tiny tolerance so
    that float noise cannot lose a frame)."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"target length must be a positive number of seconds, got {seconds}")
    return int(seconds * FRAME_RATE + 1e-6)

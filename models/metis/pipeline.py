"""Metis end to end over MaskGCT's parts: :class:`MetisPipeline`.

What Metis needs from MaskGCT (a :class:`~models.maskgct.pipeline.MaskGCTPipeline` here; served,
the MaskGCT part deployments):

* ``semantic`` part: w2v-bert-2.0 layer-17 features, normalised — the adapter's ``finetune_cond`` —
  and the semantic codec for the prompt tokens;
* ``acoustic`` part: the acoustic codec (prompt codes of the 24 kHz reference, ``decode``);
* ``s2a`` part: the two S2A models, run with Metis' settings (1-layer ``[40]`` cfg 0, then full
  ``[40, 16, 1, ...]`` cfg 2.5);
* ``g2p`` and ``t2s`` (TTS only: Metis' TTS stage 1 is MaskGCT's T2S with its weights).

The stage-1 models of VC / SE / TSE are Metis' own (:mod:`models.metis.stage1`, LoRA merged at load).
Each task runs :class:`~models.metis.orchestration.MetisOrchestrator`, the code the served entry
runs over its deployments; the random state travels from stage to stage: same seed, same output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from models.core.stages import ProgressFn, run_inline
from models.maskgct.pipeline import MaskGCTPipeline
from models.metis.configs import official_stage1_config, tiny_stage1_config
from models.metis.lora import load_lora_stage1
from models.metis.official import BASE_FILE, LORA_RELEASES, OMNI_FILE, STAGE1_FILES
from models.metis.orchestration import CONDITIONED_TASKS, InlineStages, LocalStages, MetisInputError, MetisOrchestrator
from models.metis.stage1 import MetisStage1, build_stage1, load_stage1
from models.metis.tasks import STAGE1_SETTINGS, TASKS
from models.weights import find_local, resolve

__all__ = ["MetisInputError", "MetisPipeline", "load_stage1_models"]


def load_stage1_models(mode: str, tasks: Sequence[str], device: str | torch.device = "cpu", *, kind: str,
                       dtype: torch.dtype = torch.float32, cache_dir: str | os.PathLike | None = None,
                       local_dir: str | os.PathLike | None = None, seed: int = 0,
                       omni: bool = False) -> tuple[dict[str, MetisStage1], str]:
    """Metis' own stage-1 models for ``tasks`` (``tts`` needs none: it is MaskGCT's T2S), or the one
    ``omni`` model -> (task -> model, note).

    ``kind``: the weights kind of the MaskGCT parts they run with (their stage 2 and prompt codecs);
    the two must match. ``tiny``: seeded random models whose interfaces match MaskGCT's tiny parts.
    Otherwise the official files (base + LoRA + adapter merged once, strictly), resolved in ``mode``
    (``pretrained`` may download; any other mode reads this machine only and raises
    WeightsUnavailable naming the missing files rather than mixing tiny with official weights).
    ``local_dir``: a folder laid out like ``amphion/metis``."""
    def found(task: str):
        files = STAGE1_FILES[task]
        if mode == "pretrained":
            return resolve(files, "pretrained", cache_dir=cache_dir, local_dir=local_dir)
        return find_local(files, cache_dir=cache_dir, local_dir=local_dir)

    if omni:
        if kind == "tiny":
            return {"omni": build_stage1(tiny_stage1_config("omni"), "omni", seed=seed + 10, device=device)}, ""
        where = found("omni")
        model = load_stage1(where.root / OMNI_FILE, official_stage1_config("omni"), "omni", device=device, dtype=dtype)
        return {"omni": model}, where.note
    models: dict[str, MetisStage1] = {}
    notes: list[str] = []
    for task in (t for t in tasks if t != "tts"):
        if kind == "tiny":  # seeded by task, so a part loading one task builds what the whole pipeline does
            models[task] = build_stage1(tiny_stage1_config(task, lora=False), task,
                                        seed=seed + 11 + CONDITIONED_TASKS.index(task), device=device)
            continue
        where = found(task)
        lora, adapter = LORA_RELEASES[task]
        models[task] = load_lora_stage1(where.root / BASE_FILE, where.root / lora, where.root / adapter,
                                        official_stage1_config(task), task, device=device, dtype=dtype)
        notes.append(where.note)
    return models, "; ".join(n for n in notes if n)


class MetisPipeline:
    """Metis TTS / VC / SE / TSE. Build with :meth:`from_weights`; run :meth:`tts`, :meth:`vc`,
    :meth:`se`, :meth:`tse` (24 kHz float32 audio out, only the target decoded)."""

    def __init__(self, maskgct: MaskGCTPipeline, stage1: Mapping[str, MetisStage1], *, weights_kind: str = "custom",
                 note: str = "") -> None:
        self.maskgct = maskgct
        self.stage1 = dict(stage1)
        self.weights_kind = weights_kind
        self.note = note
        for task, model in self.stage1.items():
            if task not in ("vc", "se", "tse", "omni") or not model.has_adapter:
                raise ValueError(f"stage1[{task!r}]: expected a vc / se / tse / omni model with its adapter")
        if "omni" in self.stage1 and len(self.stage1) > 1:
            raise ValueError("an omni pipeline holds the omni model only (it serves every task)")

    @property
    def omni(self) -> bool:
        """True when one ``metis_omni`` model serves every task."""
        return "omni" in self.stage1

    @property
    def tasks(self) -> tuple[str, ...]:
        if self.omni:
            return TASKS if self.maskgct.g2p is not None else tuple(t for t in TASKS if t != "tts")
        held = list(self.stage1)
        if self.maskgct.t2s is not None and self.maskgct.g2p is not None:
            held.insert(0, "tts")
        return tuple(held)

    @classmethod
    def from_weights(cls, mode: str = "auto", device: str | torch.device = "cpu", *,
                     tasks: Sequence[str] = TASKS, g2p_data=None, cache_dir: str | os.PathLike | None = None,
                     local_dirs: Mapping[str, str | os.PathLike] | None = None, seed: int = 0,
                     omni: bool = False) -> "MetisPipeline":
        """MaskGCT's parts (``models.maskgct``) plus one stage-1 model per task. ``mode`` as
        :meth:`MaskGCTPipeline.from_weights`; ``"tiny"`` builds seeded random stage-1 models whose
        interfaces match the tiny MaskGCT parts. ``local_dirs`` may name a folder laid out like
        ``amphion/metis`` under the key ``"metis"``. ``omni``: one ``metis_omni`` model for every task
        (phones for TTS, the adapter for the others) instead of MaskGCT's T2S and the LoRA releases."""
        unknown = set(tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown Metis tasks {sorted(unknown)}; known: {', '.join(TASKS)}")
        parts = ["semantic", "acoustic", "s2a"]
        if "tts" in tasks:
            parts += ["g2p"] if omni else ["t2s", "g2p"]
        maskgct = MaskGCTPipeline.from_weights(mode, device, g2p_data=g2p_data, cache_dir=cache_dir,
                                               local_dirs=local_dirs, seed=seed, parts=parts)
        stage1, note = load_stage1_models(mode, tasks, device, kind=maskgct.weights_kind, cache_dir=cache_dir,
                                          local_dir=(local_dirs or {}).get("metis"), seed=seed, omni=omni)
        return cls(maskgct, stage1, weights_kind=maskgct.weights_kind,
                   note="; ".join(n for n in (maskgct.note, note) if n))

    # -- tasks ---------------------------------------------------------------------------------

    def orchestrator(self) -> MetisOrchestrator:
        return MetisOrchestrator(self.maskgct.g2p, self.maskgct.num_quantizers,
                                 max_target_seconds=self.maskgct.max_target_seconds)

    def _run(self, task: str, on_step: ProgressFn | None, *args, **kwargs) -> np.ndarray:
        if task not in self.tasks:
            raise ValueError(f"this Metis pipeline holds no {task!r} model (it holds {', '.join(self.tasks)})")
        stages = InlineStages(LocalStages(self), on_step)
        return run_inline(getattr(self.orchestrator(), task)(stages, *args, on_progress=on_step, **kwargs))

    def tts(self, text: str, reference24k: np.ndarray, reference_text: str, *, language: str | None = None,
            reference_language: str | None = None, target_len_s: float | None = None,
            n_timesteps: int = STAGE1_SETTINGS["tts"].n_timesteps, cfg: float = STAGE1_SETTINGS["tts"].cfg,
            seed: int | None = None, on_step: ProgressFn | None = None) -> np.ndarray:
        """Metis TTS (:meth:`MetisOrchestrator.tts`): 24 kHz float32, the target only."""
        return self._run("tts", on_step, text, reference24k, reference_text, language=language,
                         reference_language=reference_language, target_len_s=target_len_s, n_timesteps=n_timesteps,
                         cfg=cfg, seed=seed)

    def vc(self, source24k: np.ndarray, reference24k: np.ndarray, *, seed: int | None = None,
           on_step: ProgressFn | None = None) -> np.ndarray:
        """Voice conversion: the source's content in the reference's voice."""
        return self._run("vc", on_step, source24k, reference24k, seed=seed)

    def tse(self, mixture24k: np.ndarray, reference24k: np.ndarray, *, seed: int | None = None,
            on_step: ProgressFn | None = None) -> np.ndarray:
        """Target speaker extraction: the reference (enrolment) speaker's speech from the mixture."""
        return self._run("tse", on_step, mixture24k, reference24k, seed=seed)

    def se(self, noisy24k: np.ndarray, *, seed: int | None = None, on_step: ProgressFn | None = None) -> np.ndarray:
        """Speech enhancement: no prompt."""
        return self._run("se", on_step, noisy24k, seed=seed)

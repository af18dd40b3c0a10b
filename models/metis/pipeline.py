"""Metis end to end over MaskGCT's parts: :class:`MetisPipeline`.

What Metis needs from MaskGCT (a :class:`~models.maskgct.pipeline.MaskGCTPipeline`, or later the
MaskGCT part deployments):

* ``semantic`` part: w2v-bert-2.0 layer-17 features, normalised (``semantic_encoder.encode``) — the
  adapter's ``finetune_cond`` — and the semantic codec (``semantic_tokens``) for the prompt tokens;
* ``acoustic`` part: the acoustic codec (``acoustic_codes`` of the 24 kHz prompt, ``decode``);
* ``s2a`` part: the two S2A models, run with Metis' settings (:func:`metis_semantic_to_acoustic`:
  1-layer ``[40]`` cfg 0, then full ``[40, 16, 1, ...]`` cfg 2.5);
* ``g2p`` and ``t2s`` (TTS only: Metis' TTS stage 1 is MaskGCT's T2S with its weights).

The stage-1 models of VC / SE / TSE are Metis' own (:mod:`models.metis.stage1`, LoRA merged at load).
One ``torch.Generator`` feeds every draw of a call: same seed, same output.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from models.audio.resample import to_rate
from models.blocks.masked_generation import ProgressCallback
from models.core import checks
from models.maskgct.pipeline import MaskGCTPipeline
from models.maskgct.s2a import MaskGCTS2A
from models.metis.configs import official_stage1_config, tiny_stage1_config
from models.metis.lora import load_lora_stage1
from models.metis.official import BASE_FILE, LORA_RELEASES, OMNI_FILE, STAGE1_FILES
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
from models.text import detect_language
from models.weights import resolve

__all__ = ["MetisInputError", "MetisPipeline", "metis_semantic_to_acoustic"]

SEMANTIC_RATE = 16000
ACOUSTIC_RATE = 24000


class MetisInputError(ValueError):
    """A request Metis cannot run (empty text, too-short audio, no room for a target)."""


@torch.inference_mode()
def metis_semantic_to_acoustic(
    s2a_1layer: MaskGCTS2A,
    s2a_full: MaskGCTS2A,
    semantic: torch.Tensor,
    prompt_codes: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    on_step: ProgressCallback | None = None,
) -> torch.Tensor:
    """Metis' stage 2 (``Metis.semantic2acoustic``): ``semantic`` (1, P+T) and the acoustic prompt
    (1, P, nq) (P may be 0: SE) -> target codes (1, T, nq). The 1-layer model predicts layer 0 with
    ``[40]`` steps and cfg 0; the full model the rest with ``[40, 16, 1, ...]``, cfg 2.5, that layer as
    ``gt_code``; temperature 1.5, top-k 0.98, rescale 0.75 in both."""
    if generator is None:
        generator = torch.Generator(device=semantic.device)
        if seed is not None:
            generator.manual_seed(int(seed))
        else:
            generator.seed()
    first, full_steps = stage2_steps(s2a_full.num_quantizer)
    n_target = semantic.shape[1] - prompt_codes.shape[1]
    total = s2a_1layer.planned_steps(first, n_target) + s2a_full.planned_steps(full_steps, n_target, 1)
    offset = s2a_1layer.planned_steps(first, n_target)

    def progress(base: int):
        return None if on_step is None else (lambda step, _n: on_step(base + step, total))

    def settings(s):
        return dict(temp=s.temp, filter_thres=s.filter_thres, cfg=s.cfg, rescale_cfg=s.rescale_cfg)

    layer0 = s2a_1layer.generate(semantic, prompt_codes, n_timesteps=first, generator=generator,
                                 on_step=progress(0), **settings(STAGE2_1LAYER))
    return s2a_full.generate(semantic, prompt_codes, n_timesteps=full_steps, gt_code=layer0, generator=generator,
                             on_step=progress(offset), **settings(STAGE2_FULL))


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
        kind = maskgct.weights_kind
        stage1: dict[str, MetisStage1] = {}
        notes = [maskgct.note]
        if omni:
            if kind == "tiny":
                model = build_stage1(tiny_stage1_config("omni"), "omni", seed=seed + 10, device=device)
            else:
                found = resolve(STAGE1_FILES["omni"], "pretrained", cache_dir=cache_dir,
                                local_dir=(local_dirs or {}).get("metis"))
                model = load_stage1(found.root / OMNI_FILE, official_stage1_config("omni"), "omni", device=device)
                notes.append(found.note)
            return cls(maskgct, {"omni": model}, weights_kind=kind, note="; ".join(n for n in notes if n))
        for i, task in enumerate(t for t in tasks if t != "tts"):
            if kind == "tiny":
                stage1[task] = build_stage1(tiny_stage1_config(task, lora=False), task, seed=seed + 11 + i, device=device)
                continue
            found = resolve(STAGE1_FILES[task], "pretrained", cache_dir=cache_dir,
                            local_dir=(local_dirs or {}).get("metis"))
            lora, adapter = LORA_RELEASES[task]
            stage1[task] = load_lora_stage1(found.root / BASE_FILE, found.root / lora, found.root / adapter,
                                            official_stage1_config(task), task, device=device)
            notes.append(found.note)
        return cls(maskgct, stage1, weights_kind=kind, note="; ".join(n for n in notes if n))

    # -- stages --------------------------------------------------------------------------------

    def _model(self, task: str) -> MetisStage1:
        if self.omni:
            return self.stage1["omni"]
        if task not in self.stage1:
            raise ValueError(f"this Metis pipeline holds no {task!r} model (it holds {', '.join(self.tasks)})")
        return self.stage1[task]

    @torch.inference_mode()
    def features(self, wav16k: np.ndarray) -> torch.Tensor:
        """Normalised w2v-bert-2.0 layer-17 features (1, F, 1024) at 50 Hz: the adapter's input."""
        enc = self.maskgct.semantic_encoder
        if enc is None:
            raise ValueError("the semantic part is not loaded")
        if len(wav16k) < enc.min_samples:
            raise MetisInputError("the audio is too short")
        return enc.encode(wav16k).to(self.maskgct.device, torch.float32)

    @torch.inference_mode()
    def semantic_stage(self, task: str, prompt_semantic: torch.Tensor, *, target_len: int,
                       phone_ids: Sequence[int] | None = None, finetune_cond: torch.Tensor | None = None,
                       n_timesteps: int | None = None, cfg: float | None = None, temperature: float | None = None,
                       generator: torch.Generator | None = None, on_step: ProgressCallback | None = None) -> torch.Tensor:
        """Stage 1 for ``task`` with its settings (:data:`STAGE1_SETTINGS`, overridable): (1, T) tokens."""
        s = STAGE1_SETTINGS[task]
        kwargs = dict(n_timesteps=s.n_timesteps if n_timesteps is None else int(n_timesteps),
                      cfg=s.cfg if cfg is None else float(cfg), rescale_cfg=s.rescale_cfg,
                      temp=s.temp if temperature is None else float(temperature), filter_thres=s.filter_thres,
                      generator=generator, on_step=on_step)
        prompt = prompt_semantic.to(self.maskgct.device).reshape(1, -1)
        if task == "tts":
            phones = torch.as_tensor(list(phone_ids), dtype=torch.long, device=self.maskgct.device).reshape(1, -1)
            t2s = self.stage1["omni"] if self.omni else self.maskgct.t2s
            return t2s.generate(prompt, phones, int(target_len), **kwargs)
        return self._model(task).generate(prompt, None, int(target_len), finetune_cond=finetune_cond, **kwargs)

    def acoustic_stage(self, semantic: torch.Tensor, prompt_codes: torch.Tensor, *,
                       generator: torch.Generator | None = None, on_step: ProgressCallback | None = None) -> torch.Tensor:
        m = self.maskgct
        return metis_semantic_to_acoustic(m.s2a_1layer, m.s2a_full, semantic.to(m.device), prompt_codes.to(m.device),
                                          generator=generator, on_step=on_step)

    # -- prompts -------------------------------------------------------------------------------

    def _prompt(self, wav24k: np.ndarray) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """(16 kHz samples, semantic tokens (1, P), acoustic codes (1, P, nq)), cut to a common P."""
        wav16 = to_rate(wav24k, ACOUSTIC_RATE, SEMANTIC_RATE)
        sem = self.maskgct.semantic_tokens(wav16)
        codes = self.maskgct.acoustic_codes(wav24k)
        n = min(sem.shape[1], codes.shape[1])
        return wav16, sem[:, :n], codes[:, :n]

    def _generator(self, seed: int | None) -> torch.Generator:
        g = torch.Generator(device=self.maskgct.device)
        if seed is None:
            g.seed()
        else:
            g.manual_seed(int(seed))
        return g

    def _finish(self, prompt_semantic, tokens, prompt_codes, generator, on_step) -> np.ndarray:
        semantic = torch.cat([prompt_semantic.to(tokens.device), tokens], dim=1)
        codes = self.acoustic_stage(semantic, prompt_codes, generator=generator, on_step=on_step)
        return self.maskgct.decode(codes)

    # -- tasks ---------------------------------------------------------------------------------

    def tts(self, text: str, reference24k: np.ndarray, reference_text: str, *, language: str | None = None,
            reference_language: str | None = None, target_len_s: float | None = None, n_timesteps: int = 25,
            cfg: float = 2.5, seed: int | None = None, on_step: Callable[[str, int, int], None] | None = None) -> np.ndarray:
        """Metis TTS: MaskGCT's T2S with Metis' target length rule and stage-2 settings."""
        if not text.strip():
            raise MetisInputError("the text is empty")
        if not reference_text.strip():
            raise MetisInputError("the reference text is empty")
        lang = language or metis_language(detect_language(text))
        ref_lang = reference_language or metis_language(detect_language(reference_text))
        _, sem, codes = self._prompt(checks.mono(reference24k, "the reference", MetisInputError))
        if target_len_s is not None:
            target_len = target_len_from_seconds(target_len_s)
        else:
            target_len = tts_target_len(sem.shape[1], text, reference_text)
        if target_len < 1:
            raise MetisInputError("the target length is zero frames")
        phones = self.maskgct.phone_ids(reference_text, ref_lang) + self.maskgct.phone_ids(text, lang)
        g = self._generator(seed)
        tokens = self.semantic_stage("tts", sem, target_len=target_len, phone_ids=phones, n_timesteps=n_timesteps,
                                     cfg=cfg, generator=g, on_step=_stage(on_step, "t2s"))
        return self._finish(sem, tokens, codes, g, _stage(on_step, "s2a"))

    def _conditioned(self, task: str, cond_wav16: np.ndarray, sem: torch.Tensor, codes: torch.Tensor,
                     seed: int | None, on_step) -> np.ndarray:
        cond = self.features(cond_wav16)
        target_len = cond.shape[1] - sem.shape[1]
        if target_len < 1:
            raise MetisInputError("the source audio is too short")
        g = self._generator(seed)
        tokens = self.semantic_stage(task, sem, target_len=target_len, finetune_cond=cond, generator=g,
                                     on_step=_stage(on_step, "semantic"))
        return self._finish(sem, tokens, codes, g, _stage(on_step, "s2a"))

    def vc(self, source24k: np.ndarray, reference24k: np.ndarray, *, seed: int | None = None, on_step=None) -> np.ndarray:
        """Voice conversion: the source's content in the reference's voice."""
        wav16, sem, codes = self._prompt(checks.mono(reference24k, "the reference", MetisInputError))
        src16 = to_rate(checks.mono(source24k, "the source", MetisInputError), ACOUSTIC_RATE, SEMANTIC_RATE)
        return self._conditioned("vc", np.concatenate([wav16, src16]), sem, codes, seed, on_step)

    def tse(self, mixture24k: np.ndarray, reference24k: np.ndarray, *, seed: int | None = None, on_step=None) -> np.ndarray:
        """Target speaker extraction: the reference (enrolment) speaker's speech from the mixture."""
        wav16, sem, codes = self._prompt(checks.mono(reference24k, "the reference", MetisInputError))
        mix16 = to_rate(checks.mono(mixture24k, "the mixture", MetisInputError), ACOUSTIC_RATE, SEMANTIC_RATE)
        return self._conditioned("tse", np.concatenate([wav16, mix16]), sem, codes, seed, on_step)

    def se(self, noisy24k: np.ndarray, *, seed: int | None = None, on_step=None) -> np.ndarray:
        """Speech enhancement: no prompt (an empty (1, 0) prompt and acoustic prompt)."""
        noisy16 = to_rate(checks.mono(noisy24k, "the audio", MetisInputError), ACOUSTIC_RATE, SEMANTIC_RATE)
        device = self.maskgct.device
        sem = torch.zeros(1, 0, dtype=torch.long, device=device)
        codes = torch.zeros(1, 0, self.maskgct.num_quantizers, dtype=torch.long, device=device)
        return self._conditioned("se", noisy16, sem, codes, seed, on_step)


def _stage(on_step, name: str):
    return None if on_step is None else (lambda step, total: on_step(name, step, total))

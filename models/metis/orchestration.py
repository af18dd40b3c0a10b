"""Metis' orchestration, once, for the in-process pipeline and the served entry.

:class:`MetisOrchestrator` runs each task's recipe (checks, prompts, target length, the stage-1
model, MaskGCT's S2A with Metis' settings, decoding only the target) over :class:`MetisStages`:
MaskGCT's stages (``models.maskgct.orchestration``: the semantic part also serves the normalised
w2v-bert features) plus one generating stage per task whose stage-1 model is Metis' own
(``vc_semantic``, ``se_semantic``, ``tse_semantic``: :class:`Stage1Stages`). Served, every stage is
a call to the deployment that owns it; in process, :class:`InlineStages` over :class:`LocalStages`.
Numpy in and out; the random state travels with the requests, so a seed gives the same audio either way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import numpy as np
import torch

from models.audio.resample import to_rate
from models.core import checks
from models.core import stages as core_stages
from models.core.prompt_cache import PromptMemo
from models.core.stages import ProgressFn, float32, generator_state, inline, int64, stage_generator, step_reporter
from models.maskgct import orchestration as maskgct
from models.maskgct.orchestration import MaskGCTOrchestrator
from models.metis.stage1 import MetisStage1
from models.metis.tasks import (
    STAGE1_SETTINGS,
    STAGE2_1LAYER,
    STAGE2_FULL,
    metis_language,
    stage2_steps,
    target_len_from_seconds,
    tts_target_len,
)
from models.text import LanguageUnavailable, detect_language, normalize_language

__all__ = [
    "CONDITIONED_TASKS",
    "InlineStages",
    "LocalStages",
    "MetisInputError",
    "MetisOrchestrator",
    "MetisStages",
    "Stage1Stages",
    "semantic_stage",
]

SEMANTIC_RATE = 16000
ACOUSTIC_RATE = 24000
#: The tasks whose stage 1 is one of Metis' own models (condition adapter over w2v-bert features).
CONDITIONED_TASKS = ("vc", "se", "tse")


class MetisInputError(ValueError):
    """A request Metis cannot run (empty text, too-short audio, no room for a target)."""


def semantic_stage(task: str) -> str:
    """The stage that runs ``task``'s stage-1 model (``vc_semantic``, ...)."""
    return f"{task}_semantic"


class MetisStages(maskgct.MaskGCTStages, Protocol):
    """MaskGCT's stages, plus:"""

    async def features(self, wav16k: np.ndarray) -> np.ndarray:
        """float32 [L] at 16 kHz -> normalised w2v-bert layer-17 features, float32 [F, hidden]."""

    # and per conditioned task, ``<task>_semantic(request)``: prompt_semantic int64 [P], features
    # float32 [P + T, hidden], target_len T, settings -> {tokens int64 [T], rng}.


class Stage1Stages:
    """Metis' stage-1 models as stages: ``models`` maps a task (or ``omni``: every task) to its model."""

    GENERATING = frozenset(semantic_stage(t) for t in CONDITIONED_TASKS)

    def __init__(self, models: Mapping[str, MetisStage1], device: str | torch.device = "cpu") -> None:
        self.models = dict(models)
        self.device = torch.device(device)

    def model(self, task: str) -> MetisStage1:
        found = self.models.get(task) or self.models.get("omni")
        if found is None:
            raise RuntimeError(f"no Metis {task} model here (this holds: {', '.join(self.models) or 'nothing'})")
        return found

    @torch.inference_mode()
    def _conditioned(self, task: str, request: dict, emit: ProgressFn | None) -> dict:
        gen = stage_generator(request, self.device)
        s = STAGE1_SETTINGS[task]
        prompt = torch.from_numpy(int64(request["prompt_semantic"])).view(1, -1).to(self.device)
        cond = torch.from_numpy(float32(request["features"])).unsqueeze(0).to(self.device)
        tokens = self.model(task).generate(
            prompt, None, int(request["target_len"]), finetune_cond=cond,
            n_timesteps=int(request.get("n_timesteps", s.n_timesteps)), cfg=float(request.get("cfg", s.cfg)),
            rescale_cfg=s.rescale_cfg, temp=s.temp, filter_thres=s.filter_thres, generator=gen,
            on_step=step_reporter("semantic", emit))
        return {"tokens": int64(tokens).reshape(-1), "rng": generator_state(gen)}

    def vc_semantic(self, request: dict, emit: ProgressFn | None = None) -> dict:
        return self._conditioned("vc", request, emit)

    def se_semantic(self, request: dict, emit: ProgressFn | None = None) -> dict:
        return self._conditioned("se", request, emit)

    def tse_semantic(self, request: dict, emit: ProgressFn | None = None) -> dict:
        return self._conditioned("tse", request, emit)


class LocalStages(maskgct.LocalStages, Stage1Stages):
    """Every stage of an in-process :class:`~models.metis.pipeline.MetisPipeline`. With an omni model,
    TTS's stage 1 is that model (phones, no adapter) instead of MaskGCT's T2S."""

    GENERATING = maskgct.LocalStages.GENERATING | Stage1Stages.GENERATING

    def __init__(self, pipeline) -> None:
        maskgct.LocalStages.__init__(self, pipeline.maskgct)
        Stage1Stages.__init__(self, pipeline.stage1, pipeline.maskgct.device)

    @torch.inference_mode()
    def text_to_semantic(self, request: dict, emit: ProgressFn | None = None) -> dict:
        if "omni" not in self.models:
            return super().text_to_semantic(request, emit)
        gen = stage_generator(request, self.device)
        s = STAGE1_SETTINGS["tts"]
        tokens = self.models["omni"].generate(
            torch.from_numpy(int64(request["prompt_semantic"])).view(1, -1).to(self.device),
            torch.from_numpy(int64(request["phone_ids"])).view(1, -1).to(self.device), int(request["target_len"]),
            n_timesteps=int(request["n_timesteps"]), cfg=float(request["cfg"]), rescale_cfg=s.rescale_cfg,
            temp=float(request["temperature"]), filter_thres=s.filter_thres, generator=gen,
            on_step=step_reporter("t2s", emit))
        return {"tokens": int64(tokens).reshape(-1), "rng": generator_state(gen)}


class InlineStages(core_stages.InlineStages, local=LocalStages):
    """:class:`LocalStages` as coroutines that never suspend (for ``run_inline``)."""


class MetisOrchestrator:
    """Each Metis task over any :class:`MetisStages`. ``g2p``: a :class:`models.text.G2P` (TTS only;
    None without). ``num_quantizers``: the acoustic codec's layers. ``offload`` as
    :class:`~models.maskgct.orchestration.MaskGCTOrchestrator`'s."""

    def __init__(self, g2p, num_quantizers: int, *,
                 max_target_seconds: float | None = maskgct.DEFAULT_MAX_TARGET_SECONDS,
                 offload: Callable[..., Awaitable[Any]] | None = None) -> None:
        self.g2p = g2p
        self.num_quantizers = int(num_quantizers)
        self.max_target_seconds = max_target_seconds
        self.offload = offload or inline

    # --- checks and small pieces --------------------------------------------------------------

    def _check_length(self, frames: int, what: str) -> int:
        if frames < 1:
            raise MetisInputError(f"{what} leaves no room for a target (0 frames)")
        if self.max_target_seconds is not None and frames > self.max_target_seconds * maskgct.FRAME_RATE:
            raise MetisInputError(f"target too long: {frames / maskgct.FRAME_RATE:.1f} s, "
                                  f"at most {self.max_target_seconds:g} s")
        return frames

    @staticmethod
    def _language(language: str | None, text: str) -> str:
        """``auto`` / None: Metis' rule (langid's answer when Metis knows it, else ``en``)."""
        if language is None or language == "auto":
            return metis_language(detect_language(text))
        return normalize_language(language)

    def _phones(self, text: str, lang: str, what: str) -> list[int]:
        if self.g2p is None:
            raise RuntimeError("Metis TTS needs the G2P")
        try:
            ids = list(self.g2p.phone_ids(text, lang))
        except LanguageUnavailable as exc:
            raise MetisInputError(f"{what}: {exc}") from None
        if not ids:
            raise MetisInputError(f"{what} has nothing to pronounce")
        return ids

    async def _prompt(self, stages: MetisStages, wav24: np.ndarray, wav16: np.ndarray, progress: ProgressFn,
                      prompts: PromptMemo | None):
        """(semantic int64 [P], acoustic codes int64 [P, nq]) of a 24 kHz reference, cut to a common P;
        ``prompts`` keeps them between requests (None: computed)."""
        prompts = prompts or PromptMemo()
        sem = int64(await prompts.get("semantic_tokens", lambda: stages.semantic_tokens(wav16))).reshape(-1)
        progress("semantic_prompt", 1, 1)
        codes = int64(await prompts.get("acoustic_codes", lambda: stages.acoustic_codes(wav24)))
        progress("acoustic_prompt", 1, 1)
        n = min(sem.shape[0], codes.shape[0])
        if n < 1:
            raise MetisInputError("the reference audio is too short")
        return np.ascontiguousarray(sem[:n]), np.ascontiguousarray(codes[:n])

    async def _finish(self, stages: MetisStages, prompt_semantic: np.ndarray, tokens: np.ndarray,
                      prompt_codes: np.ndarray, seed: int | None, rng, progress: ProgressFn) -> np.ndarray:
        """Metis' stage 2 (MaskGCT's S2A, its settings) on prompt + target tokens, then decode the target."""
        first, full = stage2_steps(self.num_quantizers)
        answer = await stages.semantic_to_acoustic({
            "semantic": np.concatenate([prompt_semantic, int64(tokens).reshape(-1)]), "prompt_codes": prompt_codes,
            "n_timesteps": first + full[1:], "cfg": STAGE2_FULL.cfg, "first_layer_cfg": STAGE2_1LAYER.cfg,
            "rescale_cfg": STAGE2_FULL.rescale_cfg, "temperature": STAGE2_FULL.temp,
            "filter_thres": STAGE2_FULL.filter_thres, "seed": seed, "rng": rng,
        })
        audio = float32(await stages.decode(int64(answer["codes"]))).reshape(-1)
        progress("decode", 1, 1)
        return audio

    @staticmethod
    def _progress(on_progress: ProgressFn | None) -> ProgressFn:
        return on_progress or (lambda stage, step, total: None)

    # --- TTS ----------------------------------------------------------------------------------

    def _tts_checked(self, text, reference24k, reference_text, language, reference_language, target_len_s, n_timesteps,
                     cfg, seed) -> dict:
        text = MaskGCTOrchestrator.text(text, "text")
        reference_text = MaskGCTOrchestrator.text(reference_text, "reference_text")
        wav24 = MaskGCTOrchestrator.reference(reference24k)
        return dict(
            text=text, reference_text=reference_text, wav24=wav24, wav16=to_rate(wav24, ACOUSTIC_RATE, SEMANTIC_RATE),
            lang=self._language(language, text),
            ref_lang=self._language(language if reference_language is None else reference_language, reference_text),
            target_len=None if target_len_s is None else self._check_length(
                target_len_from_seconds(checks.finite(target_len_s, "target_len", MetisInputError, positive=True)),
                "target_len"),
            n_timesteps=checks.integer(n_timesteps, "n_timesteps", MetisInputError, 1),
            cfg=checks.finite(cfg, "cfg", MetisInputError), seed=checks.seed(seed, MetisInputError))

    async def tts(self, stages: MetisStages, text: str, reference24k: np.ndarray, reference_text: str, *,
                  language: str | None = None, reference_language: str | None = None,
                  target_len_s: float | None = None, n_timesteps: int = STAGE1_SETTINGS["tts"].n_timesteps,
                  cfg: float = STAGE1_SETTINGS["tts"].cfg, seed: int | None = None,
                  on_progress: ProgressFn | None = None, prompts: PromptMemo | None = None) -> np.ndarray:
        """Metis TTS: MaskGCT's T2S (Metis' temperature) with Metis' target-length rule (prompt tokens
        x UTF-8 bytes of the text / bytes of the reference text, unless ``target_len_s``) and stage 2;
        24 kHz float32, only the target decoded. ``language`` None or ``auto``: detected per text.
        ``prompts``: where the reference's encodings are kept between requests (None: computed)."""
        progress = self._progress(on_progress)
        c = await self.offload(self._tts_checked, text, reference24k, reference_text, language, reference_language,
                               target_len_s, n_timesteps, cfg, seed)
        sem, codes = await self._prompt(stages, c["wav24"], c["wav16"], progress, prompts)
        target_len = c["target_len"]
        if target_len is None:
            target_len = self._check_length(tts_target_len(sem.shape[0], c["text"], c["reference_text"]), "the text")
        phones = await self.offload(lambda: self._phones(c["reference_text"], c["ref_lang"], "reference_text")
                                    + self._phones(c["text"], c["lang"], "text"))
        progress("g2p", 1, 1)
        s = STAGE1_SETTINGS["tts"]
        answer = await stages.text_to_semantic({
            "prompt_semantic": sem, "phone_ids": int64(phones), "target_len": target_len,
            "n_timesteps": c["n_timesteps"], "cfg": c["cfg"], "rescale_cfg": s.rescale_cfg, "temperature": s.temp,
            "filter_thres": s.filter_thres, "seed": c["seed"], "rng": None,
        })
        return await self._finish(stages, sem, answer["tokens"], codes, c["seed"], answer["rng"], progress)

    # --- VC, TSE, SE --------------------------------------------------------------------------

    def _audio16(self, wav24, what: str) -> np.ndarray:
        return to_rate(checks.mono(wav24, what, MetisInputError), ACOUSTIC_RATE, SEMANTIC_RATE)

    async def _conditioned(self, stages: MetisStages, task: str, audio24k: np.ndarray, what: str,
                           reference24k: np.ndarray | None, seed: int | None, on_progress: ProgressFn | None,
                           prompts: PromptMemo | None = None):
        progress = self._progress(on_progress)
        seed = checks.seed(seed, MetisInputError)
        audio16 = await self.offload(self._audio16, audio24k, what)
        if reference24k is None:        # SE: no prompt at all
            sem = np.zeros(0, np.int64)
            codes = np.zeros((0, self.num_quantizers), np.int64)
            cond16 = audio16
        else:
            wav24 = await self.offload(MaskGCTOrchestrator.reference, reference24k)
            wav16 = await self.offload(to_rate, wav24, ACOUSTIC_RATE, SEMANTIC_RATE)
            sem, codes = await self._prompt(stages, wav24, wav16, progress, prompts)
            cond16 = np.concatenate([wav16, audio16])
        if len(audio16) < SEMANTIC_RATE // maskgct.FRAME_RATE:
            raise MetisInputError(f"{what} is too short")
        features = float32(await stages.features(cond16))
        progress("features", 1, 1)
        target_len = self._check_length(features.shape[0] - sem.shape[0], what)
        answer = await getattr(stages, semantic_stage(task))({
            "prompt_semantic": sem, "features": features, "target_len": target_len, "seed": seed, "rng": None,
        })
        return await self._finish(stages, sem, answer["tokens"], codes, seed, answer["rng"], progress)

    async def vc(self, stages: MetisStages, source24k: np.ndarray, reference24k: np.ndarray, *,
                 seed: int | None = None, on_progress: ProgressFn | None = None,
                 prompts: PromptMemo | None = None) -> np.ndarray:
        """Voice conversion: the source's content in the reference's voice (``prompts`` as in :meth:`tts`:
        the reference's tokens and codes; its features are read with the source's, so never kept)."""
        return await self._conditioned(stages, "vc", source24k, "source_audio", reference24k, seed, on_progress,
                                       prompts)

    async def tse(self, stages: MetisStages, mixture24k: np.ndarray, reference24k: np.ndarray, *,
                  seed: int | None = None, on_progress: ProgressFn | None = None,
                  prompts: PromptMemo | None = None) -> np.ndarray:
        """Target speaker extraction: the enrolment (reference) speaker's speech out of the mixture."""
        return await self._conditioned(stages, "tse", mixture24k, "audio", reference24k, seed, on_progress,
                                       prompts)

    async def se(self, stages: MetisStages, noisy24k: np.ndarray, *, seed: int | None = None,
                 on_progress: ProgressFn | None = None) -> np.ndarray:
        """Speech enhancement: clean speech from noisy speech (no prompt)."""
        return await self._conditioned(stages, "se", noisy24k, "audio", None, seed, on_progress)

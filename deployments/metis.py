"""Metis: TTS, voice conversion, speech enhancement and target speaker extraction, over MaskGCT's
part deployments (the very replicas the MaskGCT entry calls: w2v-bert features and tokens, the
acoustic codec, T2S for TTS, S2A with Metis' settings) plus one part per task whose stage 1 is
Metis' own model (``MetisVC``, ``MetisSE``, ``MetisTSE``: base + LoRA + adapter merged once at load).
The ``Metis`` entry runs ``models.metis.orchestration`` over them, the code the in-process pipeline
runs. TTS without ``reference_audio`` speaks with the built-in ``default`` voice (``models.voices``);
without ``reference_text`` the shared ``WhisperASR`` transcribes the reference. See ``FAMILY``.
"""

from __future__ import annotations

import numpy as np
from ray import serve

from deployments.base import Loaded, Loading
from deployments.components import (
    ASR, ENTRY_DEPLOYMENT_DEFAULTS, PART_DEPLOYMENT_DEFAULTS, PartService, TextPipelineService, knobs,
)
from deployments.errors import InvalidModelInput, ModelUnavailable
from deployments.maskgct import ACOUSTIC_CODEC, S2A, SEMANTIC, T2S
from deployments.maskgct import PARTS as MASKGCT_PARTS  # Metis runs on MaskGCT's parts: shared deployments
from deployments.topology import Entry, Family, Part
from models.core.prompt_cache import PromptMemo, prompt_key
from models.maskgct.orchestration import MaskGCTInputError
from models.metis.orchestration import CONDITIONED_TASKS, LocalStages, MetisInputError, Stage1Stages, semantic_stage
from models.text import UnsupportedLanguage

SAMPLE_RATE = 24000
# UnsupportedLanguage: a `language` the G2P has no rule for (e.g. `language=xx`): a 400, not a 500.
INPUT_ERRORS = (MetisInputError, MaskGCTInputError, UnsupportedLanguage)


class MetisStage1Service(PartService):
    """One task's Metis stage-1 model (``part``: ``vc``, ``se`` or ``tse``); a progress event
    ("semantic") per decoding step. Its weights kind follows MaskGCT's parts (its stage 2): tiny with
    theirs, else the official ``amphion/metis`` files, never a mix."""

    family = "Metis"
    local_stages = Stage1Stages
    input_errors = INPUT_ERRORS

    def _load(self, loading: Loading) -> Loaded:
        from models.maskgct.pipeline import resolve_parts
        from models.metis.pipeline import load_stage1_models

        if loading.weights == "pretrained":
            kind = "pretrained"
        else:  # the answer MaskGCT's part deployments come to (auto: every part's files on this machine)
            kind = resolve_parts(loading.weights, ("s2a",), cache_dir=loading.cache_dir)[0]
        models, note = load_stage1_models(loading.weights, (self.part,), loading.device, kind=kind,
                                          dtype=loading.dtype, cache_dir=loading.cache_dir)
        return Loaded(Stage1Stages(models, loading.device), kind, note)


#: The part serving each conditioned task's stage 1.
TASK_PARTS = {task: f"Metis{task.upper()}" for task in CONDITIONED_TASKS}
PARTS = tuple(
    Part(name, serve.deployment(MetisStage1Service, name=name, **PART_DEPLOYMENT_DEFAULTS), args={"part": task},
         stages=(semantic_stage(task),))
    for task, name in TASK_PARTS.items())

#: Registry key -> the deployments its requests use.
MODEL_PARTS = {
    "metis": (SEMANTIC, ACOUSTIC_CODEC, T2S, S2A),
    **{f"metis_{task}": (SEMANTIC, ACOUSTIC_CODEC, S2A, name) for task, name in TASK_PARTS.items()},
}


class MetisService(TextPipelineService):
    """The Metis entry: ``tts``, ``vc``, ``se``, ``tse``. Only TTS reads text (and the built-in
    voice): without the G2P data the other tasks still serve and TTS answers 503 with the reason."""

    label = "Metis"
    sample_rate = SAMPLE_RATE
    local_stages = LocalStages
    parts = (*MASKGCT_PARTS, *PARTS)
    model_parts = MODEL_PARTS
    g2p_required = False
    text_models = frozenset({"metis"})

    def _load(self, loading: Loading) -> Loaded:
        from models.voices import VoiceUnavailable, load_builtin_voice

        self.voice_unavailable = ""
        self.default_voice = None
        try:
            self.default_voice = load_builtin_voice(sample_rate=SAMPLE_RATE, mode=loading.weights)
            # The built-in voice's encodings are kept like any reference's: named by its samples.
            self.default_voice_key = prompt_key(self.default_voice.audio, SAMPLE_RATE)
        except VoiceUnavailable as exc:
            self.voice_unavailable = str(exc)
        return super()._load(loading)

    def _own_problems(self, model: str | None) -> list[str]:
        problems = super()._own_problems(model)
        if model == "metis" and self.voice_unavailable:
            problems.append(f"{self.voice_unavailable} (requests that send reference_audio are still served)")
        return problems

    async def _run(self, model: str, payload: dict, call, prompts: PromptMemo | None = None) -> dict:
        """Run one task: ``call(orchestrator, stages, emit)``; its parts must hold one weights kind.
        ``prompts``: the request's memo of its reference's encodings (reported in the answer)."""
        from models.core.stages import in_thread
        from models.metis.orchestration import MetisOrchestrator

        parts = MODEL_PARTS[model]
        kind = await self._parts_kind(*parts)
        if "+" in kind:
            raise ModelUnavailable(f"{self.label}: its parts hold different weights ({kind}); official Metis "
                                   "needs official MaskGCT parts and amphion/metis files alike")

        async def make(_kind, emit):
            facts = await self.part_facts(ACOUSTIC_CODEC)
            orchestrator = MetisOrchestrator(self.g2p_or_none, int(facts[ACOUSTIC_CODEC]["num_quantizers"]),
                                             offload=in_thread)
            return await call(orchestrator, self.handles(payload.get("task_id")), emit)

        return await self.render(payload, make, INPUT_ERRORS, parts, prompts=prompts)

    def _tts_memo(self, payload: dict) -> PromptMemo:
        """The memo of a TTS request's reference: the one sent, else the built-in voice."""
        if payload.get("reference") is None and self.default_voice is not None:
            return PromptMemo(self.prompt_cache, self.default_voice_key)
        return self.prompt_memo(payload)

    async def _reference(self, payload: dict, emit,
                         prompts: PromptMemo) -> tuple[np.ndarray, str, str | None, PromptMemo]:
        """(reference 24 kHz, its transcript, its language or None, its memo): the request's, else the built-in
        voice; a reference sent without a transcript is transcribed by the shared Whisper deployment."""
        reference = payload.get("reference")
        if reference is None:
            if self.default_voice is None:
                raise ModelUnavailable(f"{self.label}: no reference_audio sent and {self.voice_unavailable}")
            return self.default_voice.audio, self.default_voice.text, None, prompts
        if payload.get("reference_text") is not None:
            return reference, payload["reference_text"], None, prompts
        reference = np.ascontiguousarray(reference, dtype=np.float32)
        heard = await prompts.get("whisper_prompt:all", lambda: self.asr(
            "prompt", reference, SAMPLE_RATE, len(reference) / SAMPLE_RATE))
        if not heard["text"].strip():
            raise InvalidModelInput("reference_audio: no speech was recognised in it; send `reference_text` "
                                    "(its transcript) if it does hold speech")
        emit("asr", 1, 1)
        keep = max(1, int(round(float(heard["seconds"]) * SAMPLE_RATE)))
        return reference[:keep], heard["text"], heard["language"], prompts.cut(keep)

    async def tts(self, payload: dict) -> dict:
        """payload: text, language (``auto``: detected), reference (float32 24 kHz, or None: the built-in
        voice), reference_text (None: transcribed), target_len (s), n_timesteps, cfg, seed, subtype, task_id,
        prompt_key (names the reference, whose encodings are kept; every method that takes a reference)."""
        self.g2p()
        memo = self._tts_memo(payload)

        async def call(orchestrator, stages, emit):
            reference, reference_text, reference_language, prompts = await self._reference(payload, emit, memo)
            return await orchestrator.tts(
                stages, payload["text"], reference, reference_text, reference_language=reference_language,
                on_progress=emit, prompts=prompts,
                **knobs(payload, "language", "n_timesteps", "cfg", "seed", target_len_s="target_len"))

        return await self._run("metis", payload, call, memo)

    async def vc(self, payload: dict) -> dict:
        """payload: source, reference (float32 24 kHz), seed, subtype, task_id, prompt_key."""
        memo = self.prompt_memo(payload)
        return await self._run("metis_vc", payload, lambda o, stages, emit: o.vc(
            stages, payload["source"], payload["reference"], on_progress=emit, prompts=memo,
            **knobs(payload, "seed")), memo)

    async def tse(self, payload: dict) -> dict:
        """payload: audio (the mixture), reference (the enrolment clip), seed, subtype, task_id, prompt_key."""
        memo = self.prompt_memo(payload)
        return await self._run("metis_tse", payload, lambda o, stages, emit: o.tse(
            stages, payload["audio"], payload["reference"], on_progress=emit, prompts=memo,
            **knobs(payload, "seed")), memo)

    async def se(self, payload: dict) -> dict:
        """payload: audio (noisy speech), seed, subtype, task_id."""
        return await self._run("metis_se", payload, lambda o, stages, emit: o.se(
            stages, payload["audio"], on_progress=emit, **knobs(payload, "seed")))


MetisDeployment = serve.deployment(MetisService, name="Metis", **{**ENTRY_DEPLOYMENT_DEFAULTS, "max_ongoing_requests": 4})

FAMILY = Family("metis", parts=PARTS, entries=(
    Entry("Metis", MetisDeployment, models=tuple(MODEL_PARTS), uses=(*MODEL_PARTS["metis"], *TASK_PARTS.values(), ASR)),
))

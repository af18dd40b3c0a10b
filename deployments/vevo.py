"""Vevo (amphion/Vevo): TTS and timbre, style and voice conversion.

Parts (one deployment each; the four routes share them): ``VevoTokenizer`` (HuBERT-large L18 ->
vq32 / vq8192 ids), ``VevoARVC`` (AR Vq32ToVq8192), ``VevoARTTS`` (AR PhoneToVq8192), ``VevoFM``
(mel front end and flow matching), ``VevoVocoder`` (Vocos). The ``Vevo`` entry serves the four
routes (``timbre``, ``style``, ``voice``, ``tts``) by running ``models.vevo.orchestration``, the
very code the in-process pipeline runs, over the parts' handles; transcripts come from the shared
``WhisperASR``. The seeded random state travels with the requests. See ``FAMILY``.
"""

from __future__ import annotations

import numpy as np
from ray import serve

from deployments.base import Loading
from deployments.components import (
    ASR, ENTRY_DEPLOYMENT_DEFAULTS, PART_DEPLOYMENT_DEFAULTS, PartService, TextPipelineService, knobs,
)
from deployments.topology import Entry, Family, Part
from models.vevo.orchestration import LocalStages, VevoInputError

SAMPLE_RATE = 24000
AR_VC, AR_TTS = "VevoARVC", "VevoARTTS"


class VevoPartService(PartService):
    family = "Vevo"
    local_stages = LocalStages
    input_errors = (VevoInputError,)

    def _load_part(self, part: str, loading: Loading):
        from models.vevo.pipeline import VevoPipeline

        return VevoPipeline.from_weights(loading.weights, device=loading.device, dtype=loading.dtype, parts=(part,),
                                         cache_dir=loading.cache_dir)


VevoPartDeployment = serve.deployment(VevoPartService, name="VevoPart", **PART_DEPLOYMENT_DEFAULTS)

PARTS = (
    Part("VevoTokenizer", VevoPartDeployment, {"part": "tokenizer"}, stages=("content_tokens", "contentstyle_tokens")),
    Part(AR_VC, VevoPartDeployment, {"part": "ar_vc"}, stages=("ar_vc",)),
    Part(AR_TTS, VevoPartDeployment, {"part": "ar_tts"}, stages=("ar_tts",)),
    Part("VevoFM", VevoPartDeployment, {"part": "fm"}, stages=("mel", "flow_matching")),
    Part("VevoVocoder", VevoPartDeployment, {"part": "vocoder"}, stages=("vocode",)),
)


class VevoService(TextPipelineService):
    """The Vevo entry: one method per route. Only TTS reads text, so only it needs the G2P data:
    without it the conversions still serve and ``tts`` answers 503 with the reason."""

    label = "Vevo"
    sample_rate = SAMPLE_RATE
    local_stages = LocalStages
    parts = PARTS
    g2p_required = False
    text_models = frozenset({"vevo_tts"})

    async def _generate(self, payload: dict, run, ar_part: str | None = None) -> dict:
        """Run one route's orchestration; ``ar_part``: the AR it samples, whose length limits apply.
        Every route takes a reference: its encodings are kept by ``payload["prompt_key"]``."""
        from models.core.stages import in_thread
        from models.vevo.orchestration import VevoOrchestrator

        memo = self.prompt_memo(payload)

        async def make(kind, emit):
            limits = (await self.part_facts())[ar_part]["ar_limits"] if ar_part else {}
            orchestrator = VevoOrchestrator(self.g2p_or_none, offload=in_thread,
                                            **({"ar_limits": limits} if limits else {}))
            common = dict(on_progress=emit, prompts=memo, **knobs(payload, "flow_matching_steps", "seed"))
            return await run(orchestrator, self.handles(payload.get("task_id")), common)

        return await self.render(payload, make, VevoInputError, prompts=memo)

    async def timbre(self, payload: dict) -> dict:
        """payload: source, reference (float32 24 kHz), flow_matching_steps, seed, subtype, task_id."""
        return await self._generate(payload, lambda o, stages, common: o.timbre(
            stages, payload["source"], payload["reference"], **common))

    async def style(self, payload: dict) -> dict:
        return await self._generate(payload, lambda o, stages, common: o.style(
            stages, payload["source"], payload["reference"], **common), AR_VC)

    async def voice(self, payload: dict) -> dict:
        """payload: as :meth:`timbre`, plus mode (``ar`` / ``fm``)."""
        return await self._generate(payload, lambda o, stages, common: o.voice(
            stages, payload["source"], payload["reference"], **knobs(payload, "mode"), **common), AR_VC)

    async def tts(self, payload: dict) -> dict:
        """payload: text, language, reference (float32 24 kHz), mode, reference_text, flow_matching_steps, seed,
        subtype, task_id."""
        self.g2p()

        async def transcribe(ref24):
            return await self.asr("prompt", np.ascontiguousarray(ref24, np.float32), SAMPLE_RATE,
                                  len(ref24) / SAMPLE_RATE)

        return await self._generate(payload, lambda o, stages, common: o.tts(
            stages, payload["text"], payload["reference"], **knobs(payload, "mode", "reference_text", "language"),
            transcribe=transcribe, **common), AR_TTS)


VevoDeployment = serve.deployment(VevoService, name="Vevo", **ENTRY_DEPLOYMENT_DEFAULTS)

FAMILY = Family("vevo", parts=PARTS, entries=(
    Entry("Vevo", VevoDeployment, models=("vevo_tts", "vevo_timbre", "vevo_style", "vevo_voice"),
          uses=(*(p.name for p in PARTS), ASR)),
))

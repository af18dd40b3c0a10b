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
from deployments.components import ASR, PartService, TextPipelineService
from deployments.topology import Entry, Family, Part

SAMPLE_RATE = 24000
GENERATING = frozenset({"ar_vc", "ar_tts", "flow_matching"})


class VevoPartService(PartService):
    family = "Vevo"
    generating = GENERATING

    def __init__(self, part: str, **loading):
        from models.vevo.orchestration import VevoInputError

        self.input_errors = (VevoInputError,)
        super().__init__(part, **loading)

    def _load_part(self, part: str, loading: Loading):
        from models.vevo.pipeline import VevoPipeline

        return VevoPipeline.from_weights(loading.weights, device=loading.device, dtype=loading.dtype, parts=(part,),
                                         cache_dir=loading.cache_dir)

    def _stages(self, pipeline):
        from models.vevo.orchestration import LocalStages

        return LocalStages(pipeline)


class VevoService(TextPipelineService):
    """The Vevo entry: one method per route. Only TTS reads text, so only it needs the G2P data:
    without it the conversions still serve and ``tts`` answers 503 with the reason."""

    label = "Vevo"
    sample_rate = SAMPLE_RATE
    generating = GENERATING
    g2p_required = False

    def __init__(self, components=None, **loading):
        self.parts = PARTS
        super().__init__(components, **loading)

    async def _generate(self, payload: dict, run) -> dict:
        from models.core.stages import in_thread
        from models.vevo.orchestration import VevoInputError, VevoOrchestrator, ar_limits_for

        async def make(kind, emit):
            orchestrator = VevoOrchestrator(self.g2p_or_none, ar_limits=ar_limits_for(kind),
                                            offload=in_thread)
            common = dict(flow_matching_steps=payload.get("flow_matching_steps", 32), seed=payload.get("seed"),
                          on_progress=emit)
            return await run(orchestrator, self.handles(payload.get("task_id")), common)

        return await self.render(payload, make, VevoInputError)

    async def timbre(self, payload: dict) -> dict:
        """payload: source, reference (float32 24 kHz), flow_matching_steps, seed, subtype, task_id."""
        return await self._generate(payload, lambda o, stages, common: o.timbre(
            stages, payload["source"], payload["reference"], **common))

    async def style(self, payload: dict) -> dict:
        return await self._generate(payload, lambda o, stages, common: o.style(
            stages, payload["source"], payload["reference"], **common))

    async def voice(self, payload: dict) -> dict:
        """payload: as :meth:`timbre`, plus mode (``ar`` / ``fm``)."""
        return await self._generate(payload, lambda o, stages, common: o.voice(
            stages, payload["source"], payload["reference"], payload.get("mode", "ar"), **common))

    async def tts(self, payload: dict) -> dict:
        """payload: text, language, reference (float32 24 kHz), mode, reference_text, flow_matching_steps, seed,
        subtype, task_id."""
        self.g2p()

        async def transcribe(ref24):
            return await self.asr("prompt", np.ascontiguousarray(ref24, np.float32), SAMPLE_RATE,
                                  len(ref24) / SAMPLE_RATE)

        return await self._generate(payload, lambda o, stages, common: o.tts(
            stages, payload["text"], payload["reference"], payload.get("mode", "fm"),
            reference_text=payload.get("reference_text"), language=payload.get("language", "auto"),
            transcribe=transcribe, **common))


_PART_DEFAULTS = dict(max_ongoing_requests=16, health_check_period_s=10, graceful_shutdown_timeout_s=300,
                      ray_actor_options={"num_cpus": 0.5})
VevoPartDeployment = serve.deployment(VevoPartService, name="VevoPart", **_PART_DEFAULTS)
VevoDeployment = serve.deployment(VevoService, name="Vevo", max_ongoing_requests=8, health_check_period_s=10,
                                  graceful_shutdown_timeout_s=600, ray_actor_options={"num_cpus": 0.5})

PARTS = (
    Part("VevoTokenizer", VevoPartDeployment, {"part": "tokenizer"}, stages=("content_tokens", "contentstyle_tokens")),
    Part("VevoARVC", VevoPartDeployment, {"part": "ar_vc"}, stages=("ar_vc",)),
    Part("VevoARTTS", VevoPartDeployment, {"part": "ar_tts"}, stages=("ar_tts",)),
    Part("VevoFM", VevoPartDeployment, {"part": "fm"}, stages=("mel", "flow_matching")),
    Part("VevoVocoder", VevoPartDeployment, {"part": "vocoder"}, stages=("vocode",)),
)
FAMILY = Family("vevo", parts=PARTS, entries=(
    Entry("Vevo", VevoDeployment, models=("vevo_tts", "vevo_timbre", "vevo_style", "vevo_voice"),
          uses=(*(p.name for p in PARTS), ASR)),
))

"""VevoSing (amphion/Vevo1.5): singing voice conversion.

Parts: ``VevoSingContentStyle`` (Whisper-medium + chromagram -> Coco content-style ids),
``VevoSingProsody`` (chromagram -> Coco prosody ids), ``VevoSingAR`` (Vevo1.5 AR), ``VevoSingFM``
(flow matching), ``VevoSingVocoder`` (mel front end and Vocos). The ``VevoSing`` entry runs
``models.vevosing.orchestration`` over their handles; lyrics come from the shared ``WhisperASR``
when a request has none. See ``FAMILY``.
"""

from __future__ import annotations

import numpy as np
from ray import serve

from deployments.base import Loading
from deployments.components import (
    ASR, ENTRY_DEPLOYMENT_DEFAULTS, PART_DEPLOYMENT_DEFAULTS, PartService, TextPipelineService, knobs,
)
from deployments.topology import Entry, Family, Part
from models.vevosing.orchestration import LocalStages, VevoSingInputError

SAMPLE_RATE = 24000
AR = "VevoSingAR"


class VevoSingPartService(PartService):
    family = "VevoSing"
    local_stages = LocalStages
    input_errors = (VevoSingInputError,)

    def _load_part(self, part: str, loading: Loading):
        from models.vevosing.pipeline import VevoSingPipeline

        return VevoSingPipeline.from_weights(loading.weights, device=loading.device, dtype=loading.dtype,
                                             parts=(part,), cache_dir=loading.cache_dir)


VevoSingPartDeployment = serve.deployment(VevoSingPartService, name="VevoSingPart", **PART_DEPLOYMENT_DEFAULTS)

PARTS = (
    Part("VevoSingContentStyle", VevoSingPartDeployment, {"part": "content_style"}, stages=("content_style_tokens",)),
    Part("VevoSingProsody", VevoSingPartDeployment, {"part": "prosody"}, stages=("prosody_tokens",)),
    Part(AR, VevoSingPartDeployment, {"part": "ar"}, stages=("ar",)),
    Part("VevoSingFM", VevoSingPartDeployment, {"part": "fm"}, stages=("fm",)),
    Part("VevoSingVocoder", VevoSingPartDeployment, {"part": "vocoder"}, stages=("mel", "vocode")),
)


class VevoSingService(TextPipelineService):
    """``/api/svc/vevosing``: timbre conversion (``fm``) or re-singing with the reference's style
    (``ar``, which reads lyrics and so needs the G2P data)."""

    label = "VevoSing"
    sample_rate = SAMPLE_RATE
    local_stages = LocalStages
    parts = PARTS
    g2p_required = False

    async def generate(self, payload: dict) -> dict:
        """payload: source, reference (float32 24 kHz), mode, use_shifted_src, flow_matching_steps,
        lyrics, seed, subtype, task_id, prompt_key (names the reference, whose encodings are kept)."""
        from models.core.stages import in_thread
        from models.vevosing.orchestration import VevoSingOrchestrator

        g2p = self.g2p() if payload.get("mode") == "ar" else self.g2p_or_none

        memo = self.prompt_memo(payload)

        async def make(kind, emit):
            orchestrator = VevoSingOrchestrator(g2p, transcribes=ASR in self.components, offload=in_thread,
                                                ar_length_bound=(await self.part_facts())[AR]["ar_length_bound"])
            return await orchestrator.convert(
                _SingStages(self.handles(payload.get("task_id")), self), payload["source"], payload["reference"],
                on_progress=emit, prompts=memo,
                **knobs(payload, "mode", "use_shifted_src", "flow_matching_steps", "lyrics", "seed"))

        return await self.render(payload, make, VevoSingInputError, prompts=memo)


class _SingStages:
    """VevoSing's stages: the parts' handles plus ``transcribe`` on the shared ASR deployment."""

    def __init__(self, handles, service: VevoSingService):
        self.handles = handles
        self.service = service

    async def transcribe(self, wav24k: np.ndarray, language: str | None) -> dict:
        heard = await self.service.asr("transcribe", np.ascontiguousarray(wav24k, np.float32), SAMPLE_RATE, language)
        return {"text": heard["text"], "language": heard["language"]}

    def __getattr__(self, stage: str):
        return getattr(self.__dict__["handles"], stage)


VevoSingDeployment = serve.deployment(VevoSingService, name="VevoSing", **ENTRY_DEPLOYMENT_DEFAULTS)

FAMILY = Family("vevosing", parts=PARTS, entries=(
    Entry("VevoSing", VevoSingDeployment, models=("vevosing",), uses=(*(p.name for p in PARTS), ASR)),
))

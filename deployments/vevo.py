"""The Vevo family: Vevo (TTS; timbre, style and voice conversion) and VevoSing (singing).

Part deployments (one class each family, deployed once per part; routes that use the same weights
share them):

======================  ===========  ================================================================
deployment              part         stages
======================  ===========  ================================================================
``VevoTokenizer``       tokenizer    HuBERT-large L18 -> vq32 content / vq8192 content-style ids
``VevoARVC``            ar_vc        AR Vq32ToVq8192 (style, voice conversion)
``VevoARTTS``           ar_tts       AR PhoneToVq8192 (TTS)
``VevoFM``              fm           mel front end, flow matching Vq8192ToMels
``VevoVocoder``         vocoder      Vocos, 24 kHz
``VevoSingContentStyle``content_style Whisper-medium + chromagram -> Coco content-style ids
``VevoSingProsody``     prosody      chromagram -> Coco prosody ids
``VevoSingAR``          ar           Vevo1.5 AR
``VevoSingFM``          fm           Vevo1.5 flow matching
``VevoSingVocoder``     vocoder      Vevo1.5 mel front end and Vocos
======================  ===========  ================================================================

Pipeline deployments, one per route: ``VevoTimbre``, ``VevoStyle``, ``VevoVoice``, ``VevoTTS`` (one class,
``task`` fixed at deployment) and ``VevoSing``. Each runs its family's orchestrator
(``models.vevo.orchestration`` / ``models.vevosing.orchestration``, the very code the in-process
pipelines run) over :class:`~deployments.components.PartHandles`; prompts without a transcript go to
the shared ``WhisperASR`` deployment. The seeded random state travels with the requests, so a seed gives
the same audio served or in process.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from ray import serve

from deployments.components import PartHandles, PartService, components_info, summarize_info
from deployments.errors import InvalidModelInput, ModelUnavailable
from deployments.runtime import progress_store
from models.audio.wav import encode_wav
from serve_app.progress import ProgressReporter

SAMPLE_RATE = 24000
ASR = "WhisperASR"

# deployment name -> (part, stages it runs)
VEVO_PARTS = {
    "VevoTokenizer": ("tokenizer", ("content_tokens", "contentstyle_tokens")),
    "VevoARVC": ("ar_vc", ("ar_vc",)),
    "VevoARTTS": ("ar_tts", ("ar_tts",)),
    "VevoFM": ("fm", ("mel", "flow_matching")),
    "VevoVocoder": ("vocoder", ("vocode",)),
}
VEVO_GENERATING = frozenset({"ar_vc", "ar_tts", "flow_matching"})

VEVOSING_PARTS = {
    "VevoSingContentStyle": ("content_style", ("content_style_tokens",)),
    "VevoSingProsody": ("prosody", ("prosody_tokens",)),
    "VevoSingAR": ("ar", ("ar",)),
    "VevoSingFM": ("fm", ("fm",)),
    "VevoSingVocoder": ("vocoder", ("mel", "vocode")),
}
VEVOSING_GENERATING = frozenset({"ar", "fm"})

# The part deployments each Vevo route's pipeline calls.
VEVO_TASK_DEPLOYMENTS = {
    "timbre": ("VevoTokenizer", "VevoFM", "VevoVocoder"),
    "style": ("VevoTokenizer", "VevoARVC", "VevoFM", "VevoVocoder"),
    "voice": ("VevoTokenizer", "VevoARVC", "VevoFM", "VevoVocoder"),
    "tts": ("VevoTokenizer", "VevoARTTS", "VevoFM", "VevoVocoder"),
}


def _stage_owner(parts: dict) -> dict[str, str]:
    return {stage: name for name, (_, stages) in parts.items() for stage in stages}


# ------------------------------------------------------------------------------------------------
# parts


class VevoPartService(PartService):
    label = "Vevo"
    stages = tuple(s for _, st in VEVO_PARTS.values() for s in st)
    generating = VEVO_GENERATING

    def __init__(self, part: str, **loading):
        from models.vevo.orchestration import VevoInputError

        self.input_errors = (VevoInputError,)
        super().__init__(part, **loading)

    def _load(self, part, weights, device, dtype, cache_dir):
        from models.vevo.pipeline import VevoPipeline

        return VevoPipeline.from_weights(weights, device=device, dtype=dtype, parts=(part,), cache_dir=cache_dir)

    def _stages(self, pipeline):
        from models.vevo.orchestration import LocalStages

        return LocalStages(pipeline)


class VevoSingPartService(PartService):
    label = "VevoSing"
    stages = tuple(s for _, st in VEVOSING_PARTS.values() for s in st)
    generating = VEVOSING_GENERATING

    def __init__(self, part: str, **loading):
        from models.vevosing.orchestration import VevoSingInputError

        self.input_errors = (VevoSingInputError,)
        super().__init__(part, **loading)

    def _load(self, part, weights, device, dtype, cache_dir):
        from models.vevosing.pipeline import VevoSingPipeline

        return VevoSingPipeline.from_weights(weights, device=device, dtype=dtype, parts=(part,), cache_dir=cache_dir)

    def _stages(self, pipeline):
        from models.vevosing.orchestration import LocalStages

        return LocalStages(pipeline)


# ------------------------------------------------------------------------------------------------
# pipelines


class _FamilyPipeline:
    """What the Vevo and VevoSing pipeline deployments share: G2P data, the components' weights kind,
    health, running the orchestrator with progress and turning its input errors into 400s."""

    family = ""
    parts: dict = {}
    generating: frozenset = frozenset()

    #: Whether requests can carry text (only then is the G2P loaded at start-up).
    reads_text = True

    def __init__(self, components: dict, weights: str = "auto", store=None, **_loading):
        from models.text import G2P
        from models.text.data import resolve_g2p_data
        from models.text.g2p import G2PDataUnavailable

        self.components = dict(components)
        self.store = store if store is not None else progress_store()
        self.g2p = None
        self.g2p_unavailable = "this route reads no text"
        self._kind: str | None = None
        if self.reads_text:
            try:
                self.g2p = G2P(resolve_g2p_data(weights))
            except G2PDataUnavailable as exc:  # only the text-reading modes need it
                self.g2p_unavailable = str(exc)

    def _part_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.components if n in self.parts)

    async def _weights_kind(self) -> str:
        """The parts' weights kind (asked once, when they all answer)."""
        if self._kind is None:
            stages = PartHandles(self.components, {}, frozenset(), None, self.family)
            described = await asyncio.gather(*(stages.call(n, "describe") for n in self._part_names()))
            kinds = sorted({d.get("weights") or "" for d in described})
            self._kind = kinds[0] if len(kinds) == 1 else "+".join(kinds)
        return self._kind

    async def describe(self) -> dict:
        await self._weights_kind()
        return {"sample_rate": SAMPLE_RATE}

    async def info(self) -> dict:
        infos = await components_info(self.components, self._part_names())
        return summarize_info(infos)

    def _handles(self, task_id: str | None) -> PartHandles:
        return PartHandles(self.components, _stage_owner(self.parts), self.generating, task_id, self.family)

    def _require_g2p(self):
        if self.g2p is None:
            raise ModelUnavailable(f"{self.family} needs its text front end here, which has no data: {self.g2p_unavailable}")
        return self.g2p

    async def _asr(self, method: str, *args) -> dict:
        if ASR not in self.components:
            raise ModelUnavailable(f"{self.family} needs a transcript here and speech recognition (WhisperASR) is not "
                                   "part of this application")
        return await PartHandles(self.components, {}, frozenset(), None, self.family).call(ASR, method, *args)

    async def _run(self, payload: dict, input_errors, make) -> dict:
        progress = ProgressReporter(self.store, payload.get("task_id"))
        kind = await self._weights_kind()
        started = time.perf_counter()
        try:
            wave = await make(kind, lambda stage, step, total: progress.step(stage, step, total))
        except input_errors as exc:
            raise InvalidModelInput(str(exc)) from None
        wave = np.asarray(wave, dtype=np.float32)
        wav = await asyncio.to_thread(encode_wav, wave, SAMPLE_RATE, payload.get("subtype", "PCM_16"))
        return {"wav": wav, "sample_rate": SAMPLE_RATE, "duration": len(wave) / SAMPLE_RATE, "weights": kind,
                "compute_s": time.perf_counter() - started}


class VevoService(_FamilyPipeline):
    """One Vevo route: ``task`` is ``timbre``, ``style``, ``voice`` or ``tts``."""

    family = "Vevo"
    parts = VEVO_PARTS
    generating = VEVO_GENERATING

    def __init__(self, task: str, components: dict, **loading):
        if task not in VEVO_TASK_DEPLOYMENTS:
            raise ValueError(f"unknown Vevo task {task!r}")
        self.task = task
        self.reads_text = task == "tts"  # conversions never phonemize
        super().__init__(components, **loading)

    async def generate(self, payload: dict) -> dict:
        """payload: source (float32 24 kHz; conversions) or text/language/reference_text (TTS),
        reference (float32 24 kHz), mode, flow_matching_steps, seed, subtype, task_id."""
        from models.core.stages import in_thread
        from models.vevo.orchestration import VevoInputError, VevoOrchestrator, ar_limits_for

        async def make(kind, on_progress):
            g2p = self._require_g2p() if self.task == "tts" else self.g2p
            orchestrator = VevoOrchestrator(g2p, ar_limits=ar_limits_for(kind), offload=in_thread)
            stages = self._handles(payload.get("task_id"))
            common = dict(flow_matching_steps=payload.get("flow_matching_steps", 32), seed=payload.get("seed"),
                          on_progress=on_progress)
            ref = payload["reference"]
            if self.task == "tts":
                async def transcribe(ref24):
                    return await self._asr("prompt", np.ascontiguousarray(ref24, np.float32), SAMPLE_RATE,
                                           len(ref24) / SAMPLE_RATE)
                return await orchestrator.tts(stages, payload["text"], ref, payload.get("mode", "fm"),
                                              reference_text=payload.get("reference_text"),
                                              language=payload.get("language", "auto"), transcribe=transcribe, **common)
            src = payload["source"]
            if self.task == "timbre":
                return await orchestrator.timbre(stages, src, ref, **common)
            if self.task == "style":
                return await orchestrator.style(stages, src, ref, **common)
            return await orchestrator.voice(stages, src, ref, payload.get("mode", "ar"), **common)

        return await self._run(payload, VevoInputError, make)


class VevoSingService(_FamilyPipeline):
    """``/api/svc/vevosing``: timbre conversion (``fm``) or re-singing with the reference's style (``ar``)."""

    family = "VevoSing"
    parts = VEVOSING_PARTS
    generating = VEVOSING_GENERATING

    async def generate(self, payload: dict) -> dict:
        """payload: source, reference (float32 24 kHz), mode, use_shifted_src, flow_matching_steps,
        lyrics, seed, subtype, task_id."""
        from models.core.stages import in_thread
        from models.vevosing.orchestration import VevoSingInputError, VevoSingOrchestrator
        from models.vevo.fm_ar_configs import TINY_AR_LENGTH_BOUND

        async def make(kind, on_progress):
            mode = payload.get("mode", "fm")
            g2p = self._require_g2p() if mode == "ar" else self.g2p
            orchestrator = VevoSingOrchestrator(g2p, transcribes=ASR in self.components, offload=in_thread,
                                                ar_length_bound=TINY_AR_LENGTH_BOUND if kind == "tiny" else None)
            stages = _SingStages(self._handles(payload.get("task_id")), self)
            return await orchestrator.convert(
                stages, payload["source"], payload["reference"], mode,
                use_shifted_src=bool(payload.get("use_shifted_src", False)),
                flow_matching_steps=payload.get("flow_matching_steps", 32), lyrics=payload.get("lyrics"),
                seed=payload.get("seed"), on_progress=on_progress)

        return await self._run(payload, VevoSingInputError, make)


class _SingStages:
    """VevoSing's stages: the parts' handles plus ``transcribe`` on the shared ASR deployment."""

    def __init__(self, handles: PartHandles, service: VevoSingService):
        self.handles = handles
        self.service = service

    async def transcribe(self, wav24k: np.ndarray, language: str | None) -> dict:
        heard = await self.service._asr("transcribe", np.ascontiguousarray(wav24k, np.float32), SAMPLE_RATE, language)
        return {"text": heard["text"], "language": heard["language"]}

    def __getattr__(self, stage: str):
        return getattr(self.__dict__["handles"], stage)


# ------------------------------------------------------------------------------------------------
# as Ray Serve deployments (replicas, CPUs, GPUs from config/serve*.yaml; these are code defaults)

_PART_DEFAULTS = dict(max_ongoing_requests=16, health_check_period_s=10, graceful_shutdown_timeout_s=300,
                      ray_actor_options={"num_cpus": 0.5})
_PIPELINE_DEFAULTS = dict(max_ongoing_requests=8, health_check_period_s=10, graceful_shutdown_timeout_s=600,
                          ray_actor_options={"num_cpus": 0.5})

VevoPartDeployment = serve.deployment(VevoPartService, name="VevoPart", **_PART_DEFAULTS)
VevoSingPartDeployment = serve.deployment(VevoSingPartService, name="VevoSingPart", **_PART_DEFAULTS)
VevoDeployment = serve.deployment(VevoService, name="Vevo", **_PIPELINE_DEFAULTS)
VevoSingDeployment = serve.deployment(VevoSingService, name="VevoSing", **_PIPELINE_DEFAULTS)

#: Part deployment name -> (deployment, part), for the application builder.
PART_DEPLOYMENTS = {**{name: (VevoPartDeployment, part) for name, (part, _) in VEVO_PARTS.items()},
                    **{name: (VevoSingPartDeployment, part) for name, (part, _) in VEVOSING_PARTS.items()}}
#: Route pipeline deployment name -> Vevo task.
VEVO_PIPELINES = {"VevoTimbre": "timbre", "VevoStyle": "style", "VevoVoice": "voice", "VevoTTS": "tts"}

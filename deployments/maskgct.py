"""MaskGCT text to speech: one deployment per model component, one pipeline deployment composing them.

==========================  ===============================================  ==========================
deployment                  service (plain class)                            runs
==========================  ===============================================  ==========================
``W2VBertSemantic``         :class:`W2VBertSemanticService`                  w2v-bert-2.0 features +
                                                                             MaskGCT semantic codec ->
                                                                             semantic tokens
``MaskGCTAcousticCodec``    :class:`MaskGCTAcousticCodecService`             prompt codes; codes -> 24 kHz
``MaskGCTT2S``              :class:`MaskGCTT2SService`                       text-to-semantic decoding
``MaskGCTS2A``              :class:`MaskGCTS2AService`                       1-layer + full S2A decoding
``MaskGCT``                 :class:`MaskGCTService`                          G2P and the orchestration;
                                                                             calls the others by handle
``WhisperASR`` (shared)     :class:`deployments.asr.WhisperASRService`       the prompt's transcript when
                                                                             a request has none
==========================  ===============================================  ==========================

The pipeline deployment runs :class:`models.maskgct.orchestration.MaskGCTOrchestrator`, the very
orchestration ``MaskGCTPipeline.generate`` runs in process, over :class:`HandleStages`. Arrays cross
the handles as contiguous numpy (int64 tokens and codes, float32 audio); the random state travels
with the requests, so a seed gives the same audio as in process. Every component loads only its own
part (``MaskGCTPipeline.from_weights(parts=...)``), runs inference in worker threads, and answers
``ModelUnavailable`` (503 upstream) when it has no weights. T2S and S2A publish a progress event per
decoding step for the request's ``task_id``; the pipeline publishes the other stages.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from ray import serve

from deployments.components import PartHandles, components_info, summarize_info
from deployments.errors import InvalidModelInput, ModelUnavailable
from deployments.runtime import configure_torch, progress_store, select_device, select_dtype
from models import registry
from models.audio.wav import encode_wav
from models.weights import WeightsUnavailable
from serve_app.progress import ProgressReporter

log = logging.getLogger("amphion.maskgct")

SAMPLE_RATE = 24000

SEMANTIC = "W2VBertSemantic"
ACOUSTIC_CODEC = "MaskGCTAcousticCodec"
T2S = "MaskGCTT2S"
S2A = "MaskGCTS2A"
#: The component deployments the pipeline calls, in the order the stages run.
COMPONENTS = (SEMANTIC, ACOUSTIC_CODEC, T2S, S2A)
#: Optional: only requests without ``reference_text`` need it.
ASR = "WhisperASR"
#: The demo keeps whole ASR segments until one ends at or after this many seconds of the prompt.
PROMPT_SECONDS = 4.0


def _input_errors(fn, *args):
    """Run a stage; the pipeline's input errors become InvalidModelInput (400 upstream)."""
    from models.maskgct.orchestration import MaskGCTInputError

    try:
        return fn(*args)
    except MaskGCTInputError as exc:
        raise InvalidModelInput(str(exc)) from None


class _ComponentService:
    """One MaskGCT part (see ``models.maskgct.pipeline.PARTS``) behind the deployment API."""

    part = ""
    label = ""

    def __init__(self, weights: str = "auto", device: str | None = None, torch_threads: int | None = None,
                 store=None, cache_dir: str | None = None, dtype: str | None = None):
        from models.maskgct.orchestration import LocalStages
        from models.maskgct.pipeline import MaskGCTPipeline

        self.store = store if store is not None else progress_store()
        configure_torch(torch_threads)
        self.pipeline = None
        self.stages = None
        self.unavailable = ""
        self.weights_kind = None
        try:
            device = select_device(device)
            # The pipeline keeps its codecs in float32 whatever this says (ISTFT and VQ distances want it).
            self.pipeline = MaskGCTPipeline.from_weights(weights, device=device, dtype=select_dtype(dtype, device),
                                                         parts=(self.part,), cache_dir=cache_dir)
            self.stages = LocalStages(self.pipeline)
            self.weights_kind = self.pipeline.weights_kind
            log.info("%s loaded (%s weights)", self.label, self.weights_kind)
        except WeightsUnavailable as exc:
            self.unavailable = str(exc)
            log.error("%s unavailable: %s", self.label, exc)

    def _require(self):
        if self.stages is None:
            raise ModelUnavailable(f"{self.label} has no weights: {self.unavailable}")
        return self.stages

    def _facts(self) -> dict:
        return {}

    async def describe(self) -> dict:
        self._require()
        return {"weights": self.weights_kind, **self._facts()}

    async def info(self) -> dict:
        if self.pipeline is None:
            return {"status": "unavailable", "running": True, "weights": None,
                    "detail": f"no weights: {self.unavailable}"}
        return {"status": "ready", "running": True, "weights": self.weights_kind,
                "detail": getattr(self.pipeline, "note", "") or ""}

    def _reporter(self, request: dict):
        progress = ProgressReporter(self.store, request.get("task_id"))
        return lambda stage, step, total: progress.step(stage, step, total)


class W2VBertSemanticService(_ComponentService):
    """w2v-bert-2.0 (layer 17, normalised) + the MaskGCT semantic codec: 16 kHz audio -> semantic
    tokens at 50 Hz. Named for the encoder so that other models can share it later."""

    part = "semantic"
    label = "w2v-bert-2.0 semantic tokenizer"

    def _facts(self) -> dict:
        p = self.pipeline
        return {"sample_rate": p.semantic_encoder.sample_rate, "frame_rate": p.semantic_encoder.frame_rate,
                "codebook_size": p.semantic_codec.codebook_size}

    async def tokens(self, wav16k: np.ndarray) -> np.ndarray:
        """float32 [L] at 16 kHz -> int64 [P]."""
        stages = self._require()
        return await asyncio.to_thread(_input_errors, stages.semantic_tokens, wav16k)

    def _hidden_states(self, wav16k: np.ndarray) -> np.ndarray:
        encoder = self.pipeline.semantic_encoder
        wav16k = np.ascontiguousarray(wav16k, dtype=np.float32).reshape(-1)
        if wav16k.size < encoder.min_samples:
            raise InvalidModelInput(f"audio too short for the semantic encoder: {wav16k.size} samples at 16 kHz, "
                                    f"needs {encoder.min_samples}")
        return np.ascontiguousarray(encoder.encode_raw(wav16k)[0].cpu().numpy(), dtype=np.float32)

    async def hidden_states(self, wav16k: np.ndarray) -> np.ndarray:
        """float32 [L] at 16 kHz -> the raw (un-normalised) w2v-bert layer-17 features, float32
        [F, 1024] at 50 Hz: what DualCodec's semantic branch normalises with its own statistics."""
        self._require()
        return await asyncio.to_thread(self._hidden_states, wav16k)


class MaskGCTAcousticCodecService(_ComponentService):
    """MaskGCT's acoustic codec: 24 kHz audio -> codes (the prompt), codes -> 24 kHz audio."""

    part = "acoustic"
    label = "MaskGCT acoustic codec"

    def _facts(self) -> dict:
        p = self.pipeline
        return {"sample_rate": p.sample_rate, "hop_length": p.hop_length, "num_quantizers": p.num_quantizers,
                "codebook_size": p.acoustic_codec.decoder.codebook_size}

    async def encode(self, wav24k: np.ndarray) -> np.ndarray:
        """float32 [L] at 24 kHz -> int64 [P, nq]."""
        stages = self._require()
        return await asyncio.to_thread(_input_errors, stages.acoustic_codes, wav24k)

    async def decode(self, codes: np.ndarray) -> np.ndarray:
        """int64 [T, nq] -> float32 [T * 480]."""
        stages = self._require()
        return await asyncio.to_thread(_input_errors, stages.decode, codes)


class MaskGCTT2SService(_ComponentService):
    """MaskGCT text-to-semantic; a progress event ("t2s") per decoding step."""

    part = "t2s"
    label = "MaskGCT T2S"

    async def generate(self, request: dict) -> dict:
        """See ``MaskGCTStages.text_to_semantic``; plus ``task_id``."""
        stages = self._require()
        return await asyncio.to_thread(_input_errors, stages.text_to_semantic, request, self._reporter(request))


class MaskGCTS2AService(_ComponentService):
    """MaskGCT semantic-to-acoustic (1-layer model, then the full one); a progress event ("s2a") per step."""

    part = "s2a"
    label = "MaskGCT S2A"

    def _facts(self) -> dict:
        return {"num_quantizers": self.pipeline.num_quantizers}

    async def generate(self, request: dict) -> dict:
        """See ``MaskGCTStages.semantic_to_acoustic``; plus ``task_id``."""
        stages = self._require()
        return await asyncio.to_thread(_input_errors, stages.semantic_to_acoustic, request, self._reporter(request))


class HandleStages:
    """``MaskGCTStages`` over the component deployments' handles, for one request."""

    def __init__(self, components: dict, task_id: str | None):
        self.components = components
        self.task_id = task_id
        self._call = PartHandles(components, {}, frozenset(), task_id, "MaskGCT").call

    async def semantic_tokens(self, wav16k):
        return await self._call(SEMANTIC, "tokens", np.ascontiguousarray(wav16k, dtype=np.float32))

    async def acoustic_codes(self, wav24k):
        return await self._call(ACOUSTIC_CODEC, "encode", np.ascontiguousarray(wav24k, dtype=np.float32))

    async def text_to_semantic(self, request):
        return await self._call(T2S, "generate", {**request, "task_id": self.task_id})

    async def semantic_to_acoustic(self, request):
        return await self._call(S2A, "generate", {**request, "task_id": self.task_id})

    async def decode(self, codes):
        return await self._call(ACOUSTIC_CODEC, "decode", np.ascontiguousarray(codes, dtype=np.int64))


class MaskGCTService:
    """The MaskGCT pipeline deployment: G2P and orchestration here, the models behind ``components``
    (deployment name -> DeploymentHandle, see :data:`COMPONENTS`). Loads no model weights."""

    def __init__(self, components: dict, weights: str = "auto", device: str | None = None,
                 torch_threads: int | None = None, store=None, cache_dir: str | None = None):
        from models.text import G2P
        from models.text.data import resolve_g2p_data
        from models.text.g2p import G2PDataUnavailable

        self.model = registry.get("maskgct")
        self.components = dict(components)
        self.store = store if store is not None else progress_store()
        configure_torch(torch_threads)
        self.g2p = None
        self.unavailable = ""
        self._spec: dict | None = None
        try:
            self.g2p = G2P(resolve_g2p_data(weights))
            log.info("MaskGCT pipeline ready (G2P loaded; models in %s)", ", ".join(self.components))
        except G2PDataUnavailable as exc:
            self.unavailable = str(exc)
            log.error("MaskGCT unavailable: %s", exc)

    def _require_g2p(self):
        if self.g2p is None:
            raise ModelUnavailable(f"MaskGCT has no G2P data: {self.unavailable}")
        return self.g2p

    async def _components_spec(self) -> dict:
        """What the pipeline needs to know of its components (asked once, when they all answer)."""
        if self._spec is None:
            stages = HandleStages(self.components, None)
            described = await asyncio.gather(*(stages._call(name, "describe") for name in COMPONENTS))
            by_name = dict(zip(COMPONENTS, described))
            kinds = sorted({d.get("weights") or "" for d in described})
            self._spec = {"num_quantizers": int(by_name[ACOUSTIC_CODEC]["num_quantizers"]),
                          "weights": kinds[0] if len(kinds) == 1 else "+".join(kinds)}
        return self._spec

    async def describe(self) -> dict:
        self._require_g2p()
        await self._components_spec()
        return {"sample_rate": SAMPLE_RATE}

    async def info(self) -> dict:
        """Ready only when the G2P and every component are."""
        infos = await components_info(self.components, COMPONENTS)
        summary = summarize_info(infos, [] if self.g2p is not None else [f"G2P: {self.unavailable}"])
        if summary["status"] == "ready":
            summary["detail"] = infos[T2S].get("detail") or ""
        return summary

    async def _transcribed_prompt(self, stages: HandleStages, reference: np.ndarray, progress) -> tuple:
        """No transcript given: Whisper transcribes the reference and detects its language, and the
        prompt is cut as the reference demo does (whole segments up to about the first 4 s), so the
        text matches the audio kept. -> (reference cut, its transcript, its language)."""
        from models.text.g2p import SUPPORTED_LANGUAGES

        if ASR not in self.components:
            raise ModelUnavailable("MaskGCT needs `reference_text` here: speech recognition (WhisperASR) "
                                   "is not part of this application")
        heard = await stages._call(ASR, "prompt", np.ascontiguousarray(reference, dtype=np.float32),
                                   SAMPLE_RATE, PROMPT_SECONDS)
        if not heard["text"].strip():
            raise InvalidModelInput("reference_audio: no speech was recognised in it; send `reference_text` "
                                    "(its transcript) if it does hold speech")
        if heard["language"] not in SUPPORTED_LANGUAGES:
            raise InvalidModelInput(
                f"reference_audio: its speech was recognised as language {heard['language']!r}, which MaskGCT "
                f"cannot phonemize (supported: {', '.join(SUPPORTED_LANGUAGES)}); send `reference_text`")
        progress.step("asr", 1, 1)
        keep = max(1, int(round(float(heard["seconds"]) * SAMPLE_RATE)))
        return reference[:keep], heard["text"], heard["language"]

    async def synthesize(self, payload: dict) -> dict:
        """payload: text, language, reference (float32 24 kHz), reference_text (None: transcribed), target_len,
        n_timesteps, cfg, temperature, seed, subtype, task_id."""
        from models.core.stages import in_thread
        from models.maskgct.orchestration import MaskGCTInputError, MaskGCTOrchestrator
        from models.text.g2p import UnsupportedLanguage

        g2p = self._require_g2p()
        spec = await self._components_spec()
        task_id = payload.get("task_id")
        progress = ProgressReporter(self.store, task_id)
        orchestrator = MaskGCTOrchestrator(g2p, spec["num_quantizers"], offload=in_thread)
        stages = HandleStages(self.components, task_id)
        started = time.perf_counter()
        reference, reference_text = payload["reference"], payload["reference_text"]
        reference_language = None
        if reference_text is None:
            reference, reference_text, reference_language = await self._transcribed_prompt(stages, reference, progress)
        try:
            wave = await orchestrator.generate(
                stages,
                text=payload["text"],
                language=payload["language"],
                reference_wav_24k=reference,
                reference_text=reference_text,
                reference_language=reference_language,
                target_len_s=payload.get("target_len"),
                n_timesteps=payload.get("n_timesteps", 25),
                cfg=payload.get("cfg", 2.5),
                temperature=payload.get("temperature", 0.9),
                seed=payload.get("seed"),
                on_progress=lambda stage, step, total: progress.step(stage, step, total),
            )
        except UnsupportedLanguage as exc:
            raise InvalidModelInput(f"language: {exc}") from None
        except MaskGCTInputError as exc:  # empty text, unusable reference, impossible length
            raise InvalidModelInput(str(exc)) from None
        wave = np.asarray(wave, dtype=np.float32)
        wav = await asyncio.to_thread(encode_wav, wave, SAMPLE_RATE, payload.get("subtype", "PCM_16"))
        return {"wav": wav, "sample_rate": SAMPLE_RATE, "duration": len(wave) / SAMPLE_RATE,
                "weights": spec["weights"], "compute_s": time.perf_counter() - started}


# The services as Ray Serve deployments. Replicas, CPUs and GPUs come from config/serve*.yaml;
# these are the defaults when the app is built in code (tests, benchmarks).
_COMPONENT_DEFAULTS = dict(max_ongoing_requests=16, health_check_period_s=10, graceful_shutdown_timeout_s=300,
                           ray_actor_options={"num_cpus": 0.5})

W2VBertSemanticDeployment = serve.deployment(W2VBertSemanticService, name=SEMANTIC, **_COMPONENT_DEFAULTS)
MaskGCTAcousticCodecDeployment = serve.deployment(MaskGCTAcousticCodecService, name=ACOUSTIC_CODEC,
                                                  **_COMPONENT_DEFAULTS)
MaskGCTT2SDeployment = serve.deployment(MaskGCTT2SService, name=T2S, **_COMPONENT_DEFAULTS)
MaskGCTS2ADeployment = serve.deployment(MaskGCTS2AService, name=S2A, **_COMPONENT_DEFAULTS)

#: Component deployment name -> deployment, in stage order.
COMPONENT_DEPLOYMENTS = {
    SEMANTIC: W2VBertSemanticDeployment,
    ACOUSTIC_CODEC: MaskGCTAcousticCodecDeployment,
    T2S: MaskGCTT2SDeployment,
    S2A: MaskGCTS2ADeployment,
}

MaskGCTDeployment = serve.deployment(
    MaskGCTService,
    name="MaskGCT",
    max_ongoing_requests=4,
    health_check_period_s=10,
    graceful_shutdown_timeout_s=600,
    ray_actor_options={"num_cpus": 0.5},
)

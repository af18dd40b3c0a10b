"""MaskGCT text to speech: parts ``W2VBertSemantic`` (shared with DualCodec), ``MaskGCTAcousticCodec``,
``MaskGCTT2S``, ``MaskGCTS2A``, composed by the ``MaskGCT`` entry (G2P and the orchestration of
``models.maskgct.orchestration``, the very code the in-process pipeline runs). Prompts sent without
a transcript go to the shared ``WhisperASR``. Arrays cross the handles as contiguous numpy; the
seeded random state travels with the requests, so a seed gives the same audio as in process. See
``FAMILY`` for the topology.
"""

from __future__ import annotations

import numpy as np
from ray import serve

from deployments.base import Loading
from deployments.components import (
    ASR, ENTRY_DEPLOYMENT_DEFAULTS, PART_DEPLOYMENT_DEFAULTS, PartService, TextPipelineService, knobs,
)
from deployments.errors import InvalidModelInput
from deployments.topology import Entry, Family, Part
from models.maskgct.orchestration import LocalStages, MaskGCTInputError

SAMPLE_RATE = 24000

SEMANTIC = "W2VBertSemantic"
ACOUSTIC_CODEC = "MaskGCTAcousticCodec"
T2S = "MaskGCTT2S"
S2A = "MaskGCTS2A"
#: The demo keeps whole ASR segments until one ends at or after this many seconds of the prompt.
PROMPT_SECONDS = 4.0


class MaskGCTPartService(PartService):
    """One MaskGCT part (``models.maskgct.pipeline.PARTS``). The pipeline keeps its codecs in float32
    whatever ``dtype`` says (ISTFT and VQ distances want it)."""

    family = "MaskGCT"
    local_stages = LocalStages
    input_errors = (MaskGCTInputError,)
    default_part = ""

    def __init__(self, part: str | None = None, **loading):
        super().__init__(part or self.default_part, **loading)

    def _load_part(self, part: str, loading: Loading):
        from models.maskgct.pipeline import MaskGCTPipeline

        return MaskGCTPipeline.from_weights(loading.weights, device=loading.device, dtype=loading.dtype,
                                            parts=(part,), cache_dir=loading.cache_dir)


class W2VBertSemanticService(MaskGCTPartService):
    """w2v-bert-2.0 (layer 17, normalised) + the MaskGCT semantic codec: 16 kHz audio -> semantic
    tokens at 50 Hz; the normalised features themselves (Metis' adapter input); and the raw layer-17
    features DualCodec normalises with its own statistics."""

    default_part = "semantic"
    part_label = "w2v-bert-2.0 semantic tokenizer"

    def _facts(self) -> dict:
        p = self.pipeline
        return {**super()._facts(), "sample_rate": p.semantic_encoder.sample_rate,
                "frame_rate": p.semantic_encoder.frame_rate, "codebook_size": p.semantic_codec.codebook_size}

    def _hidden_states(self, wav16k: np.ndarray) -> np.ndarray:
        encoder = self.pipeline.semantic_encoder
        wav16k = np.ascontiguousarray(wav16k, dtype=np.float32).reshape(-1)
        if wav16k.size < encoder.min_samples:
            raise InvalidModelInput(f"audio too short for the semantic encoder: {wav16k.size} samples at 16 kHz, "
                                    f"needs {encoder.min_samples}")
        return np.ascontiguousarray(encoder.encode_raw(wav16k)[0].cpu().numpy(), dtype=np.float32)

    async def hidden_states(self, wav16k: np.ndarray) -> np.ndarray:
        """float32 [L] at 16 kHz -> the raw (un-normalised) w2v-bert layer-17 features, float32
        [F, 1024] at 50 Hz."""
        import asyncio

        self._require()
        return await asyncio.to_thread(self._hidden_states, wav16k)


class MaskGCTAcousticCodecService(MaskGCTPartService):
    """MaskGCT's acoustic codec: 24 kHz audio -> codes (the prompt), codes -> 24 kHz audio."""

    default_part = "acoustic"

    def _facts(self) -> dict:
        p = self.pipeline
        return {**super()._facts(), "sample_rate": p.sample_rate, "hop_length": p.hop_length,
                "num_quantizers": p.num_quantizers, "codebook_size": p.acoustic_codec.decoder.codebook_size}


class MaskGCTT2SService(MaskGCTPartService):
    """MaskGCT text-to-semantic; a progress event ("t2s") per decoding step."""

    default_part = "t2s"


class MaskGCTS2AService(MaskGCTPartService):
    """MaskGCT semantic-to-acoustic (1-layer model, then the full one); a progress event ("s2a") per step."""

    default_part = "s2a"

    def _facts(self) -> dict:
        return {**super()._facts(), "num_quantizers": self.pipeline.num_quantizers}


W2VBertSemanticDeployment = serve.deployment(W2VBertSemanticService, name=SEMANTIC, **PART_DEPLOYMENT_DEFAULTS)
MaskGCTAcousticCodecDeployment = serve.deployment(MaskGCTAcousticCodecService, name=ACOUSTIC_CODEC, **PART_DEPLOYMENT_DEFAULTS)
MaskGCTT2SDeployment = serve.deployment(MaskGCTT2SService, name=T2S, **PART_DEPLOYMENT_DEFAULTS)
MaskGCTS2ADeployment = serve.deployment(MaskGCTS2AService, name=S2A, **PART_DEPLOYMENT_DEFAULTS)

PARTS = (
    # w2v-bert also feeds DualCodec (and Metis reads its normalised ``features``): one deployment for
    # every family, never inlined. The other parts serve Metis too: as deployments, the same
    # replicas; inlined (the local profile), a copy in each entry that uses them.
    Part(SEMANTIC, W2VBertSemanticDeployment, stages=("semantic_tokens", "features"), shared=True),
    Part(ACOUSTIC_CODEC, MaskGCTAcousticCodecDeployment, stages=("acoustic_codes", "decode")),
    Part(T2S, MaskGCTT2SDeployment, stages=("text_to_semantic",)),
    Part(S2A, MaskGCTS2ADeployment, stages=("semantic_to_acoustic",)),
)
#: The part deployments the pipeline calls, in the order the stages run.
COMPONENTS = tuple(p.name for p in PARTS)


class MaskGCTService(TextPipelineService):
    """The MaskGCT entry: G2P and orchestration here, the models in its parts."""

    label = "MaskGCT"
    sample_rate = SAMPLE_RATE
    local_stages = LocalStages
    parts = PARTS

    async def _num_quantizers(self) -> int:
        return int((await self.part_facts())[ACOUSTIC_CODEC]["num_quantizers"])

    async def info(self, model: str | None = None) -> dict:
        """Ready only when the G2P and every part are; then the detail is T2S's (its weights note)."""
        summary = await super().info(model)
        if summary["status"] == "ready":
            from deployments.components import components_info

            summary["detail"] = (await components_info(self.components, (T2S,)))[T2S].get("detail") or ""
        return summary

    async def _transcribed_prompt(self, reference: np.ndarray, emit, prompts) -> tuple:
        """No transcript given: Whisper transcribes the reference and detects its language, and the
        prompt is cut as the reference demo does (whole segments up to about the first 4 s), so the
        text matches the audio kept. -> (reference cut, its transcript, its language, the cut's memo)."""
        from models.text.g2p import SUPPORTED_LANGUAGES

        heard = await prompts.get(f"whisper_prompt:{PROMPT_SECONDS}", lambda: self.asr(
            "prompt", np.ascontiguousarray(reference, dtype=np.float32), SAMPLE_RATE, PROMPT_SECONDS))
        if not heard["text"].strip():
            raise InvalidModelInput("reference_audio: no speech was recognised in it; send `reference_text` "
                                    "(its transcript) if it does hold speech")
        if heard["language"] not in SUPPORTED_LANGUAGES:
            raise InvalidModelInput(
                f"reference_audio: its speech was recognised as language {heard['language']!r}, which MaskGCT "
                f"cannot phonemize (supported: {', '.join(SUPPORTED_LANGUAGES)}); send `reference_text`")
        emit("asr", 1, 1)
        keep = max(1, int(round(float(heard["seconds"]) * SAMPLE_RATE)))
        return reference[:keep], heard["text"], heard["language"], prompts.cut(keep)

    async def synthesize(self, payload: dict) -> dict:
        """payload: text, language, reference (float32 24 kHz), reference_text (None: transcribed), target_len,
        n_timesteps, cfg, temperature, seed, subtype, task_id, prompt_key (names the reference: its
        encodings are kept for the next request with it)."""
        from models.core.stages import in_thread
        from models.maskgct.orchestration import MaskGCTOrchestrator
        from models.text.g2p import UnsupportedLanguage

        g2p = self.g2p()
        memo = self.prompt_memo(payload)

        async def make(kind, emit):
            orchestrator = MaskGCTOrchestrator(g2p, await self._num_quantizers(), offload=in_thread)
            reference, reference_text = payload["reference"], payload["reference_text"]
            reference_language, prompts = None, memo
            if reference_text is None:
                reference, reference_text, reference_language, prompts = await self._transcribed_prompt(
                    reference, emit, memo)
            try:
                return await orchestrator.generate(
                    self.handles(payload.get("task_id")), text=payload["text"], language=payload["language"],
                    reference_wav_24k=reference, reference_text=reference_text, reference_language=reference_language,
                    on_progress=emit, prompts=prompts,
                    **knobs(payload, "n_timesteps", "cfg", "temperature", "seed", target_len_s="target_len"))
            except UnsupportedLanguage as exc:
                raise InvalidModelInput(f"language: {exc}") from None

        return await self.render(payload, make, MaskGCTInputError, prompts=memo)


MaskGCTDeployment = serve.deployment(MaskGCTService, name="MaskGCT", **{**ENTRY_DEPLOYMENT_DEFAULTS,
                                                                          "max_ongoing_requests": 4})

FAMILY = Family("maskgct", parts=PARTS, entries=(
    Entry("MaskGCT", MaskGCTDeployment, models=("maskgct",), uses=(*COMPONENTS, ASR)),
))

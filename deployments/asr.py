"""``WhisperASR``: prompt transcription for the TTS pipelines (MaskGCT, Vevo, VevoSing). One deployment,
shared by every family that needs it (never inlined), so the application holds one copy of Whisper.

``transcribe(wav, sample_rate, language=None)`` takes float32 mono audio at any rate (resampled to
16 kHz here, so callers send what they already hold) and answers the transcript of its first 30 s,
the detected language and the timed segments; ``prompt(..., min_seconds)`` also applies the MaskGCT
demo's trimming rule. Inference runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict

import numpy as np
from ray import serve

from deployments.base import Loaded, Loading, ModelService
from deployments.components import ASR
from deployments.errors import InvalidModelInput
from deployments.runtime import MAX_QUEUED_REQUESTS
from deployments.topology import Family, Part
from models.audio.resample import to_rate


class WhisperASRService(ModelService):
    label = "speech recognition (Whisper)"

    def _load(self, loading: Loading) -> Loaded:
        from models.asr.whisper import WHISPER_FILES, transcriber_from
        from models.weights import resolve

        resolved = resolve(WHISPER_FILES, loading.weights, cache_dir=loading.cache_dir)
        transcriber = transcriber_from(resolved, device=loading.device, dtype=loading.dtype)
        return Loaded(transcriber, transcriber.weights_kind, resolved.note)

    @property
    def transcriber(self):
        return None if self.loaded is None else self.loaded.model

    def _facts(self) -> dict:
        t = self.transcriber
        return {"sample_rate": t.sample_rate, "languages": list(t.languages)}

    def _transcribe(self, wav: np.ndarray, sample_rate: int, language: str | None):
        transcriber = self._require()
        if language is not None and language not in transcriber.languages:
            raise InvalidModelInput(f"language: speech recognition has no language {language!r}")
        wav16k = to_rate(wav, int(sample_rate), 16000)
        if wav16k.size < 1600:
            raise InvalidModelInput("reference_audio: too short to transcribe (under 0.1 s)")
        return transcriber.transcribe(wav16k, language=language)

    async def transcribe(self, wav: np.ndarray, sample_rate: int, language: str | None = None) -> dict:
        """-> {"text", "language", "segments": [{"start", "end", "text"}], "covered_seconds"}."""
        result = await asyncio.to_thread(self._transcribe, wav, sample_rate, language)
        return {"text": result.text, "language": result.language,
                "segments": [asdict(s) for s in result.segments], "covered_seconds": result.covered_seconds}

    async def prompt(self, wav: np.ndarray, sample_rate: int, min_seconds: float, language: str | None = None) -> dict:
        """The transcript of a TTS prompt, cut at a segment boundary: -> {"text", "language",
        "seconds"} where ``seconds`` is how much of the audio the text covers (keep that much)."""
        result = await asyncio.to_thread(self._transcribe, wav, sample_rate, language)
        seconds, text = result.prompt(min_seconds)
        return {"text": text, "language": result.language, "seconds": seconds}


WhisperASRDeployment = serve.deployment(
    WhisperASRService,
    name=ASR,
    max_ongoing_requests=8,
    max_queued_requests=MAX_QUEUED_REQUESTS,
    health_check_period_s=10,
    graceful_shutdown_timeout_s=300,
    ray_actor_options={"num_cpus": 0.5},
)

#: A shared part only: entries of other families list it in ``uses``.
FAMILY = Family("asr", entries=(), parts=(Part(ASR, WhisperASRDeployment, shared=True),))

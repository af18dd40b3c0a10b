"""``WhisperASR``: prompt transcription for the TTS pipelines (MaskGCT now; Vevo and DualCodec-VALL-E
take the same handle). One deployment so that every pipeline shares one copy of Whisper.

``transcribe(wav, sample_rate, language=None)`` takes float32 mono audio at any rate (resampled to
16 kHz here, so callers send what they already hold) and answers the transcript of its first 30 s,
the detected language and the timed segments; ``prompt(..., min_seconds)`` also applies the MaskGCT
demo's trimming rule. Inference runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict

import numpy as np
from ray import serve

from deployments.errors import InvalidModelInput, ModelUnavailable
from deployments.runtime import configure_torch, select_device, select_dtype
from models.weights import WeightsUnavailable

log = logging.getLogger("amphion.asr")

DEPLOYMENT_NAME = "WhisperASR"


def _to_16k(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    wav = np.ascontiguousarray(wav, dtype=np.float32).reshape(-1)
    if sample_rate == 16000:
        return wav
    return AF.resample(torch.from_numpy(wav), int(sample_rate), 16000).numpy()


class WhisperASRService:
    def __init__(self, weights: str = "auto", device: str | None = None, torch_threads: int | None = None,
                 cache_dir: str | None = None, dtype: str | None = None):
        from models.asr.whisper import WHISPER_FILES, transcriber_from
        from models.weights import resolve

        configure_torch(torch_threads)
        self.transcriber = None
        self.unavailable = ""
        self.note = ""
        try:
            resolved = resolve(WHISPER_FILES, weights, cache_dir=cache_dir)
            device = select_device(device)
            self.transcriber = transcriber_from(resolved, device=device, dtype=select_dtype(dtype, device))
            self.note = resolved.note
            log.info("Whisper ASR loaded (%s weights)", self.transcriber.weights_kind)
        except WeightsUnavailable as exc:
            self.unavailable = str(exc)
            log.error("Whisper ASR unavailable: %s", exc)

    def _require(self):
        if self.transcriber is None:
            raise ModelUnavailable(f"speech recognition (Whisper) has no weights: {self.unavailable}")
        return self.transcriber

    async def describe(self) -> dict:
        t = self._require()
        return {"weights": t.weights_kind, "sample_rate": t.sample_rate, "languages": list(t.languages)}

    async def info(self) -> dict:
        if self.transcriber is None:
            return {"status": "unavailable", "running": True, "weights": None, "detail": f"no weights: {self.unavailable}"}
        return {"status": "ready", "running": True, "weights": self.transcriber.weights_kind, "detail": self.note}

    def _transcribe(self, wav: np.ndarray, sample_rate: int, language: str | None):
        transcriber = self._require()
        if language is not None and language not in transcriber.languages:
            raise InvalidModelInput(f"language: speech recognition has no language {language!r}")
        wav16k = _to_16k(wav, sample_rate)
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
    name=DEPLOYMENT_NAME,
    max_ongoing_requests=8,
    health_check_period_s=10,
    graceful_shutdown_timeout_s=300,
    ray_actor_options={"num_cpus": 0.5},
)

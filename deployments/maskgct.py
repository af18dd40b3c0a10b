"""The MaskGCT text-to-speech deployment.

This release runs the whole pipeline (semantic prompt, acoustic prompt, G2P, T2S, S2A, codec
decoding) in one replica; every stage reports progress, every T2S and S2A step included.
Generation runs in a worker thread so the replica's event loop keeps serving health checks.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from ray import serve

from deployments.errors import InvalidModelInput, ModelUnavailable
from deployments.runtime import configure_torch, progress_store, select_device
from models import registry
from models.weights import WeightsUnavailable
from serve_app.audio_io import encode_wav
from serve_app.progress import ProgressReporter

log = logging.getLogger("amphion.maskgct")

SAMPLE_RATE = 24000


class MaskGCTService:
    def __init__(self, weights: str = "auto", device: str | None = None, torch_threads: int | None = None,
                 store=None, cache_dir: str | None = None):
        from models.maskgct.pipeline import MaskGCTPipeline
        from models.text.data import resolve_g2p_data
        from models.text.g2p import G2PDataUnavailable

        self.model = registry.get("maskgct")
        self.store = store if store is not None else progress_store()
        configure_torch(torch_threads)
        self.pipeline = None
        self.unavailable = ""
        self.weights_kind = None
        try:
            g2p_data = resolve_g2p_data(weights)
            self.pipeline = MaskGCTPipeline.from_weights(weights, device=select_device(device), g2p_data=g2p_data,
                                                         cache_dir=cache_dir)
            self.weights_kind = self.pipeline.weights_kind
            log.info("MaskGCT loaded (%s weights)", self.weights_kind)
        except (WeightsUnavailable, G2PDataUnavailable) as exc:
            self.unavailable = str(exc)
            log.error("MaskGCT unavailable: %s", exc)

    def _require(self):
        if self.pipeline is None:
            raise ModelUnavailable(f"MaskGCT has no weights or data: {self.unavailable}")
        return self.pipeline

    async def describe(self) -> dict:
        self._require()
        return {"sample_rate": SAMPLE_RATE}

    async def info(self) -> dict:
        if self.pipeline is None:
            return {"status": "unavailable", "running": True, "weights": None, "detail": self.unavailable}
        return {"status": "ready", "running": True, "weights": self.weights_kind,
                "detail": getattr(self.pipeline, "note", "") or ""}

    async def synthesize(self, payload: dict) -> dict:
        """payload: text, language, reference (float32 24 kHz), reference_text, target_len,
        n_timesteps, cfg, temperature, seed, subtype, task_id."""
        pipeline = self._require()
        progress = ProgressReporter(self.store, payload.get("task_id"))
        return await asyncio.to_thread(self._run, pipeline, payload, progress)

    def _run(self, pipeline, payload: dict, progress: ProgressReporter) -> dict:
        from models.maskgct.pipeline import MaskGCTInputError
        from models.text.g2p import UnsupportedLanguage

        started = time.perf_counter()
        try:
            wave = pipeline.generate(
                text=payload["text"],
                language=payload["language"],
                reference_wav_24k=payload["reference"],
                reference_text=payload["reference_text"],
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
        return {"wav": encode_wav(wave, SAMPLE_RATE, payload.get("subtype", "PCM_16")), "sample_rate": SAMPLE_RATE,
                "duration": len(wave) / SAMPLE_RATE, "weights": self.weights_kind,
                "compute_s": time.perf_counter() - started}


MaskGCTDeployment = serve.deployment(
    MaskGCTService,
    name="MaskGCT",
    max_ongoing_requests=4,
    health_check_period_s=10,
    graceful_shutdown_timeout_s=600,
)

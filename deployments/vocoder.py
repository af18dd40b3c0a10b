"""The vocoder deployment: one class, deployed three times (BigVGAN, HiFi-GAN, NSF-HiFiGAN).

Requests are batched with `@serve.batch`; the batch runs in a worker thread so the replica's event
loop keeps answering health checks and other calls while the model computes.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
from ray import serve

from deployments.errors import InvalidModelInput, ModelUnavailable
from deployments.runtime import apply_batching, configure_torch, inside_serve, progress_store, select_device
from models import registry
from models.audio.wav import encode_wav
from models.weights import WeightsUnavailable
from serve_app.progress import ProgressReporter

log = logging.getLogger("amphion.vocoder")

DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_BATCH_WAIT_S = 0.0  # no idle wait: under load requests queue up while a batch runs, and the next batch takes them all


class VocoderService:
    """A vocoder behind the deployment API: `describe`, `info`, `vocode`. Plain Python, no Ray needed."""

    def __init__(self, vocoder_name: str, weights: str = "auto", device: str | None = None,
                 torch_threads: int | None = None, store=None, cache_dir: str | None = None):
        from models.vocoders import load_vocoder

        self.model = registry.get(vocoder_name)
        self.store = store if store is not None else progress_store()
        configure_torch(torch_threads)
        self.batched = inside_serve()
        self.vocoder = None
        self.unavailable = ""
        try:
            self.vocoder = load_vocoder(vocoder_name, weights, device=select_device(device), cache_dir=cache_dir)
            log.info("%s loaded (%s weights)", self.model.display_name, self.vocoder.weights_kind)
        except WeightsUnavailable as exc:
            # Stay up and answer 503 with the reason, rather than crash-looping the replica.
            self.unavailable = str(exc)
            log.error("%s has no weights: %s", self.model.display_name, exc)

    # -- configuration -------------------------------------------------------------------------
    def reconfigure(self, config: dict) -> None:
        """Serve `user_config`: batching knobs can change without restarting the replica."""
        apply_batching(config, self._vocode_batch)

    # -- deployment API ------------------------------------------------------------------------
    def _require_model(self):
        if self.vocoder is None:
            raise ModelUnavailable(f"{self.model.display_name} has no weights: {self.unavailable}")
        return self.vocoder

    async def describe(self) -> dict:
        v = self._require_model()
        return {"sample_rate": v.sample_rate, "n_mels": v.n_mels, "hop_length": v.hop_length,
                "needs_f0": v.needs_f0, "min_samples": v.mel_config.n_fft}

    async def info(self) -> dict:
        if self.vocoder is None:
            return {"status": "unavailable", "running": True, "weights": None,
                    "detail": f"no weights: {self.unavailable}"}
        return {"status": "ready", "running": True, "weights": self.vocoder.weights_kind,
                "detail": self.vocoder_note()}

    def vocoder_note(self) -> str:
        return getattr(self.vocoder, "note", "") or ""

    async def vocode(self, payload: dict) -> dict:
        """payload: {"audio": float32 [L] at the model rate} or {"mel": float32 [n_mels, T]},
        plus "task_id" and "subtype" (WAV sample format)."""
        v = self._require_model()
        if "audio" in payload:
            if payload["audio"].shape[0] < v.mel_config.n_fft:
                ms = 1000 * v.mel_config.n_fft / v.sample_rate
                raise InvalidModelInput(f"audio: too short for {self.model.display_name} (at least {ms:.0f} ms)")
        elif payload["mel"].shape[0] != v.n_mels:
            raise InvalidModelInput(f"audio: mel has {payload['mel'].shape[0]} bands, "
                                    f"{self.model.display_name} needs {v.n_mels}")
        if self.batched:
            return await self._vocode_batch(payload)
        # Outside Serve (plain-FastAPI baseline, scripts): one request per call, still off the loop.
        return (await asyncio.to_thread(self._run_batch, [payload]))[0]

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S,
                 max_concurrent_batches=1)
    async def _vocode_batch(self, payloads: list[dict]) -> list[dict]:
        for p in payloads:
            ProgressReporter(self.store, p.get("task_id")).step(
                "vocoding", 0, 1, f"{self.model.display_name}, batch of {len(payloads)}")
        return await asyncio.to_thread(self._run_batch, payloads)

    def _run_batch(self, payloads: list[dict]) -> list[dict]:
        started = time.perf_counter()
        v = self.vocoder
        mels, f0s = [], []
        for p in payloads:
            if "audio" in p:
                mels.append(v.analyse(p["audio"]))
                f0s.append(v.pitch(p["audio"]) if v.needs_f0 else None)
            else:
                mels.append(np.ascontiguousarray(p["mel"], dtype=np.float32))
                f0s.append(None)
        waves = v.vocode(mels, f0s if v.needs_f0 else None)
        compute_s = time.perf_counter() - started
        return [
            {
                "wav": encode_wav(w, v.sample_rate, p.get("subtype", "PCM_16")),
                "sample_rate": v.sample_rate,
                "duration": len(w) / v.sample_rate,
                "weights": v.weights_kind,
                "compute_s": compute_s,
                "batch_size": len(payloads),
            }
            for w, p in zip(waves, payloads)
        ]


# The same service as a Ray Serve deployment. Names, replicas, GPUs and batching come from
# config/serve*.yaml; these are the defaults when the app is built in code.
VocoderDeployment = serve.deployment(
    VocoderService,
    name="Vocoder",
    max_ongoing_requests=32,
    health_check_period_s=10,
    graceful_shutdown_timeout_s=60,
)

"""The vocoder deployment: one class, deployed three times (BigVGAN, HiFi-GAN, NSF-HiFiGAN).

Requests are batched with `@serve.batch`; the batch runs in a worker thread so the replica's event
loop keeps answering health checks and other calls while the model computes.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from ray import serve

from deployments import metrics
from deployments.base import Loaded, Loading, ModelService
from deployments.errors import InvalidModelInput
from deployments.runtime import MAX_QUEUED_REQUESTS, apply_batching, inside_serve
from deployments.topology import Entry, Family
from models import registry
from models.audio.wav import encode_wav

DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_BATCH_WAIT_S = 0.0  # no idle wait: under load requests queue up while a batch runs, and the next batch takes them all


class VocoderService(ModelService):
    """A vocoder behind the deployment API: `describe`, `info`, `vocode`. Plain Python, no Ray needed."""

    compiled_kernels = True

    def __init__(self, vocoder_name: str, **loading):
        self.vocoder_name = vocoder_name
        self.label = registry.get(vocoder_name).display_name
        self.batched = inside_serve()
        super().__init__(**loading)

    def _load(self, loading: Loading) -> Loaded:
        from models.vocoders import load_vocoder

        vocoder = load_vocoder(self.vocoder_name, loading.weights, device=loading.device, cache_dir=loading.cache_dir)
        return Loaded(vocoder, vocoder.weights_kind, getattr(vocoder, "note", "") or "")

    @property
    def vocoder(self):
        return None if self.loaded is None else self.loaded.model

    # -- configuration -------------------------------------------------------------------------
    def reconfigure(self, config: dict) -> None:
        """Serve `user_config`: batching knobs can change without restarting the replica."""
        apply_batching(config, self._vocode_batch)

    # -- deployment API ------------------------------------------------------------------------
    def _facts(self) -> dict:
        v = self.vocoder
        return {"sample_rate": v.sample_rate, "n_mels": v.n_mels, "hop_length": v.hop_length,
                "needs_f0": v.needs_f0, "min_samples": v.mel_config.n_fft}

    async def vocode(self, payload: dict) -> dict:
        """payload: {"audio": float32 [L] at the model rate} or {"mel": float32 [n_mels, T]},
        plus "task_id" and "subtype" (WAV sample format)."""
        v = self._require()
        if "audio" in payload:
            if payload["audio"].shape[0] < v.mel_config.n_fft:
                ms = 1000 * v.mel_config.n_fft / v.sample_rate
                raise InvalidModelInput(f"audio: too short for {self.label} (at least {ms:.0f} ms)")
        elif payload["mel"].shape[0] != v.n_mels:
            raise InvalidModelInput(f"audio: mel has {payload['mel'].shape[0]} bands, "
                                    f"{self.label} needs {v.n_mels}")
        if self.batched:
            return await self._vocode_batch(payload)
        # Outside Serve (plain-FastAPI baseline, scripts): one request per call, still off the loop.
        return (await asyncio.to_thread(self._run_batch, [payload]))[0]

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S,
                 max_concurrent_batches=1)
    async def _vocode_batch(self, payloads: list[dict]) -> list[dict]:
        for p in payloads:
            self.reporter(p.get("task_id")).step("vocoding", 0, 1, f"{self.label}, batch of {len(payloads)}")
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
        metrics.record_stage("vocode", compute_s, batch_size=len(payloads))
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
    max_queued_requests=MAX_QUEUED_REQUESTS,
    health_check_period_s=10,
    graceful_shutdown_timeout_s=60,
)

FAMILY = Family("vocoders", entries=tuple(
    Entry(deployment, VocoderDeployment, models=(name,), args={"vocoder_name": name})
    for deployment, name in (("BigVGAN", "bigvgan"), ("HiFiGAN", "hifigan"), ("NSFHiFiGAN", "nsf_hifigan"))))

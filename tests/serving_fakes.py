"""Fakes for unit tests of the serving layer only (routes, auth, limits, errors). Never used
against real models: integration tests run the real vocoders."""

from __future__ import annotations

import numpy as np

from deployments.errors import ModelUnavailable
from models.audio.wav import encode_wav
from serve_app.app import configure_app, create_app
from serve_app.backend import LocalBackend
from serve_app.settings import Settings
from serve_app.state import LocalStateStore, StateCore

KEYS = [f"unit-key-{i:03d}" for i in range(50)]


class FakeVocoder:
    """Answers like a vocoder deployment: a 440 Hz tone as long as the input mel."""

    def __init__(self, fail_with: Exception | None = None, unavailable: bool = False):
        self.fail_with = fail_with
        self.unavailable = unavailable
        self.calls: list[dict] = []

    async def describe(self):
        if self.unavailable:
            raise ModelUnavailable("fake has no weights")
        return {"sample_rate": 24000, "n_mels": 100, "hop_length": 256, "needs_f0": False, "min_samples": 1024}

    async def info(self, model=None):
        return {"status": "ready", "running": True, "weights": "tiny", "detail": "fake"}

    async def vocode(self, payload):
        self.calls.append(payload)
        if self.fail_with is not None:
            raise self.fail_with
        frames = payload["mel"].shape[1] if "mel" in payload else payload["audio"].shape[0] // 256
        t = np.arange(frames * 256) / 24000
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        return {"wav": encode_wav(wave, 24000, payload.get("subtype", "PCM_16")), "sample_rate": 24000,
                "duration": len(wave) / 24000, "weights": "tiny"}


def make_app(services: dict | None = None, **settings):
    defaults = dict(dev_mode=False, api_keys=KEYS, max_content_mb=1, max_reference_mb=0.5,
                    max_content_seconds=20, max_reference_seconds=5)
    defaults.update(settings)
    s = Settings(**defaults)
    services = services if services is not None else {
        "BigVGAN": FakeVocoder(), "HiFiGAN": FakeVocoder(), "NSFHiFiGAN": FakeVocoder()}
    store = LocalStateStore(StateCore(s.rate_limit_per_minute, s.rate_limit_per_hour, s.task_ttl_s))
    return configure_app(create_app(), s, LocalBackend(services), store), services

"""The Ray Serve ingress deployment: the FastAPI app, wired to DeploymentHandles and the shared state."""

from __future__ import annotations

import logging

from ray import serve

from serve_app.app import configure_app, create_app
from serve_app.backend import ServeBackend
from serve_app.settings import load_settings
from serve_app.state import RayStateStore

log = logging.getLogger("amphion.ingress")


def warm_up_decoding() -> None:
    """Decode and resample a short clip once, so the first user upload does not pay for lazy
    imports and kernel set-up (about a second here)."""
    import io

    import numpy as np
    import soundfile as sf

    from serve_app.audio_io import decode_audio

    buf = io.BytesIO()
    sf.write(buf, np.zeros(4410, np.float32), 44100, format="WAV")
    decode_audio(buf, field="warm-up", target_sr=24000, max_seconds=1)


@serve.deployment(name="AmphionIngress", max_ongoing_requests=200)
@serve.ingress()
class AmphionIngress:
    def __init__(self, handles: dict, settings: dict):
        # API keys are read here, in the replica, from its environment: never from the config file.
        self.settings = load_settings(settings)
        self.handles = handles
        self.store = RayStateStore((self.settings.rate_limit_per_minute, self.settings.rate_limit_per_hour,
                                    self.settings.task_ttl_s))
        warm_up_decoding()
        if self.settings.dev_mode:
            log.warning("dev mode: the development API key is accepted; never run this in production")

    def __serve_build_asgi_app__(self):
        # Serve calls this after __init__, in the replica: the app is built here, around this
        # replica's handles and store, instead of being pickled from the driver.
        return configure_app(create_app(), self.settings, ServeBackend(self.handles), self.store)

"""Application settings: one pydantic model, filled from the Serve config's `args` and the environment.

The same object configures the Ray Serve ingress and the plain-FastAPI app used by tests and
benchmarks, so both enforce exactly the same limits.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

DEV_API_KEY = "amphion-dev-key-change-in-production"
API_VERSION = "1.0.0"

MB = 1024 * 1024


class ConfigurationError(RuntimeError):
    """The application refuses to start with this configuration."""


class Settings(BaseModel):
    # Security
    dev_mode: bool = False
    api_keys: list[str] = Field(default_factory=list, repr=False)

    # Rate limits, counted per API key
    rate_limit_per_minute: int = Field(10, ge=1, description="requests per minute per endpoint")
    rate_limit_per_hour: int = Field(100, ge=1, description="requests per hour over all endpoints")

    # Uploads
    max_reference_mb: float = Field(50, gt=0)
    max_content_mb: float = Field(100, gt=0)
    max_reference_seconds: float = Field(60, gt=0)
    max_content_seconds: float = Field(600, gt=0)
    max_text_chars: int = Field(2000, ge=1)
    body_timeout_s: float = Field(
        120, gt=0, description="seconds a client has to send a model route's whole request body, from the "
                               "request's start; a slower upload (e.g. a slowloris trickle) is answered 408")
    require_content_length: bool = Field(
        False, description="refuse (411) a model route's body sent without Content-Length (chunked): behind "
                           "Ray Serve's proxy such a body is buffered as fast as the client sends it, so its "
                           "size is only found out after hundreds of MB; every usual client declares it")

    # Model calls
    model_timeout_s: float = Field(
        900, gt=0, description="longest a model request may wait and run, queueing included; beyond it the call is "
                               "cancelled and the client gets 503 with Retry-After (an overloaded service says "
                               "so instead of holding connections open). Async jobs (Prefer: respond-async) "
                               "have no such limit")

    # Progress and async jobs (Prefer: respond-async)
    task_ttl_s: float = Field(600, gt=0, description="seconds a task's progress, and an async job's result "
                                                     "after it finished, are kept")
    max_async_jobs: int = Field(16, ge=1, description="async jobs one ingress replica runs at once; more are "
                                                       "refused 503 with Retry-After")

    # Storage shared by every ingress replica: saved voices and async job results live under it.
    # One machine: a local folder; a cluster: a mount every ingress node sees (NFS, EFS, Filestore).
    storage_dir: str = Field(
        default_factory=lambda: os.environ.get("AMPHION_STORAGE_DIR", str(Path.home() / ".local/share/amphion-serve")),
        description="folder for saved voices and async job results, shared by every ingress replica "
                    "(AMPHION_STORAGE_DIR overrides the default)")
    # Saved voices (POST /api/voices), counted per API key: over either quota a new voice is refused
    # (409 for the count, 413 for the bytes) until the key deletes some.
    voice_max_count: int = Field(100, ge=1, description="saved voices per API key")
    voice_max_mb: float = Field(200, gt=0, description="MB of saved voice audio per API key, all its voices together")

    # Models
    weights: str = Field("auto", pattern="^(pretrained|tiny|auto)$")

    def reference_bytes(self) -> int:
        return int(self.max_reference_mb * MB)

    def content_bytes(self) -> int:
        return int(self.max_content_mb * MB)

    def voice_bytes(self) -> int:
        return int(self.voice_max_mb * MB)


def keys_from_environment(env: dict[str, str] | None = None) -> list[str]:
    """Keys from AMPHION_API_KEYS (comma-separated) and the file named by AMPHION_API_KEYS_FILE."""
    env = os.environ if env is None else env
    keys = [k.strip() for k in env.get("AMPHION_API_KEYS", "").split(",") if k.strip()]
    key_file = env.get("AMPHION_API_KEYS_FILE", "").strip()
    if key_file:
        try:
            text = Path(key_file).read_text()
        except OSError as exc:
            raise ConfigurationError(f"AMPHION_API_KEYS_FILE cannot be read ({exc.strerror})") from None
        keys += [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return list(dict.fromkeys(keys))


def load_settings(args: dict | None = None, env: dict[str, str] | None = None) -> Settings:
    """Settings from the Serve config `args`, with API keys always taken from the environment.

    Keys never live in the config file: it is checked into repos and shown by `serve config`.
    """
    args = dict(args or {})
    args.pop("api_keys", None)
    settings = Settings(**args, api_keys=keys_from_environment(env))
    if not settings.dev_mode and not settings.api_keys:
        raise ConfigurationError(
            "no API keys configured: set AMPHION_API_KEYS or AMPHION_API_KEYS_FILE "
            "(dev_mode is off, so the development key is not accepted)"
        )
    return settings

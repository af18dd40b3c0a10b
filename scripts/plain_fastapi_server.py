"""The same FastAPI app as the Serve ingress, in one plain uvicorn process with the models
in-process (``serve_app.application.compose_local``): a "no Ray" baseline to compare against.

    python scripts/plain_fastapi_server.py --port 8100 [--threads 1] [--models vocoders,codecs]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import uvicorn

    from serve_app.app import configure_app, create_app
    from serve_app.application import AppArgs, compose_local
    from serve_app.backend import LocalBackend
    from serve_app.settings import load_settings
    from serve_app.state import LocalStateStore, StateCore

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--weights", default="tiny")
    parser.add_argument("--models", default="vocoders", help="comma-separated model families")
    opts = parser.parse_args()

    settings = load_settings({"weights": opts.weights, "rate_limit_per_minute": 10**9,
                              "rate_limit_per_hour": 10**9, "dev_mode": not os.environ.get("AMPHION_API_KEYS")})
    store = LocalStateStore(StateCore(settings.rate_limit_per_minute, settings.rate_limit_per_hour, settings.task_ttl_s))
    services = compose_local(AppArgs(weights=opts.weights, torch_threads=opts.threads,
                                     models=opts.models.split(",")), store=store)
    app = configure_app(create_app(), settings, LocalBackend(services), store)
    uvicorn.run(app, host="127.0.0.1", port=opts.port, log_level="warning")


if __name__ == "__main__":
    main()

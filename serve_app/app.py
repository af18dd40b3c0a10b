"""The FastAPI application: every documented route, error mapping, the API-key security scheme.

`create_app()` builds the routes; `configure_app()` plugs in settings, the model backend and the
shared state when a replica (or a test, or the benchmark's plain process) starts.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from serve_app.auth import API_KEY_HEADER, KeyChecker
from serve_app.errors import install_error_handlers
from serve_app.gatekeeper import GateContext, Gatekeeper, route_matcher
from serve_app.routes import codec, enhancement, health, progress_ws, svc, tta, tts, vc, vocoder
from serve_app.routes.common import CONTENT_FIELDS, REFERENCE_FIELDS, field_limit
from serve_app.settings import API_VERSION, Settings

FORM_FIELDS_ALLOWANCE = 2 * 1024 * 1024   # text and token fields beside the uploads
SECURITY_SCHEME = "APIKeyHeader"

DESCRIPTION = """
The Amphion audio-generation models (TTS, voice and singing voice conversion, text-to-audio,
codecs, vocoders) behind one API.

* Authenticate with the `X-API-Key` header (the **Authorize** button above).
* Audio uploads: WAV, MP3, FLAC or OGG, recognised from their bytes; 50 MB for reference audio,
  100 MB for other audio. Audio responses are WAV at the model's native sample rate.
* Each model request has a task id (send `X-Task-ID`, or read it from the response) whose
  progress streams on the WebSocket `/ws/progress/{task_id}`.
* Limits per API key: 10 requests per minute per endpoint and 100 per hour; every limited response
  carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds).
"""


def create_app() -> FastAPI:
    app = FastAPI(
        title="Amphion API",
        version=API_VERSION,
        description=DESCRIPTION,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
        swagger_ui_oauth2_redirect_url="/api/docs/oauth2-redirect",
    )
    routers = [m.router for m in (tts, vc, enhancement, svc, tta, codec, vocoder, health, progress_ws)]
    for router in routers:
        app.include_router(router)
    # Our own flat list of HTTP routes: newer FastAPI wraps included routers, so `app.routes` no
    # longer lists their paths.
    app.state.api_routes = [r for router in routers for r in router.routes if isinstance(r, APIRoute)]
    install_error_handlers(app)
    app.add_middleware(Gatekeeper, context_getter=lambda: getattr(app.state, "gate", None))
    app.openapi = lambda: _openapi(app)
    return app


def _openapi(app: FastAPI) -> dict:
    """OpenAPI with the API-key scheme declared and required on every route that needs a key."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schema.setdefault("components", {}).setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "apiKey", "in": "header", "name": API_KEY_HEADER,
    }
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if path.startswith("/api/") and path != "/api/health":
                operation["security"] = [{SECURITY_SCHEME: []}]
                operation.setdefault("parameters", []).append({
                    "name": "X-Task-ID", "in": "header", "required": False,
                    "description": "Optional task id (8-64 chars of A-Za-z0-9_-) to follow on /ws/progress/{task_id}",
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
                })
    app.openapi_schema = schema
    return schema


def model_routes(app: FastAPI) -> list[APIRoute]:
    return [r for r in app.state.api_routes if r.path.startswith("/api/") and r.path != "/api/health"]


def body_limits(app: FastAPI, settings: Settings) -> dict[str, int]:
    """Route template -> most bytes its body may have: its upload fields' limits plus form fields."""
    limits = {}
    for route in model_routes(app):
        uploads = [p.name for p in route.dependant.body_params if p.name in REFERENCE_FIELDS + CONTENT_FIELDS]
        limits[route.path] = sum(field_limit(settings, f) for f in uploads) + FORM_FIELDS_ALLOWANCE
    return limits


def configure_app(app: FastAPI, settings: Settings, backend, store) -> FastAPI:
    app.state.settings = settings
    app.state.backend = backend
    app.state.store = store
    app.state.gate = GateContext(
        keys=KeyChecker(settings),
        store=store,
        route_templates=route_matcher(app.state.api_routes),
        body_limits=body_limits(app, settings),
        task_routes=frozenset(r.path for r in model_routes(app)),
    )
    return app

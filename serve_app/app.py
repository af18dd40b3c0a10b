"""The FastAPI application: every documented route, error mapping, the API-key security scheme.

`create_app()` builds the routes; `configure_app()` plugs in settings, the model backend and the
shared state when a replica (or a test, or the benchmark's plain process) starts.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from serve_app.async_jobs import ASYNC_METHODS, ASYNC_OPENAPI_RESPONSES, PREFER_PARAMETER, AsyncJobs
from serve_app.auth import API_KEY_HEADER, KeyChecker
from serve_app.errors import install_error_handlers
from serve_app.gatekeeper import GateContext, Gatekeeper, route_matcher
from serve_app.metrics import RequestMetrics
from serve_app.openai_errors import OPENAI_PREFIX, OpenAIErrors
from serve_app.routes import (
    codec, enhancement, health, openai_speech, playground, progress_ws, svc, tasks, tta, tts, vc, vocoder, voices,
)
from serve_app.routes.common import CONTENT_FIELDS, REFERENCE_FIELDS, field_limit
from serve_app.settings import API_VERSION, Settings

FORM_FIELDS_ALLOWANCE = 2 * 1024 * 1024   # text and token fields beside the uploads
# /api routes that are not model calls: no task id, no X-Task-ID or Prefer, no body limit.
SERVICE_PATHS = ("/api/health", *tasks.PATHS, *openai_speech.SERVICE_PATHS)
SECURITY_SCHEME = "APIKeyHeader"
BEARER_SCHEME = "BearerAuth"
#: Paths of the API proper (keys, limits, task ids); the rest is documentation and the playground.
API_PREFIXES = ("/api/", OPENAI_PREFIX)

DESCRIPTION = """
The Amphion audio-generation models (TTS, voice and singing voice conversion, text-to-audio,
codecs, vocoders) behind one API.

* Authenticate with the `X-API-Key` header (the **Authorize** button above).
* Audio uploads: WAV, MP3, FLAC or OGG, recognised from their bytes; 50 MB for reference audio,
  100 MB for other audio. Audio responses are at the model's native sample rate, WAV unless
  `response_format` asks for `wav_float`, `flac`, `mp3`, `ogg`/`opus`, `aac` or raw `pcm`.
* TTS routes take `stream=true`: each sentence's audio is sent as soon as it is ready (chunked
  transfer, `wav` or `pcm`).
* Each model request has a task id (send `X-Task-ID`, or read it from the response) whose
  progress streams on the WebSocket `/ws/progress/{task_id}`.
* Long jobs: send `Prefer: respond-async` to get 202 and the task id at once, then poll
  `GET /api/tasks/{task_id}` and fetch `GET /api/tasks/{task_id}/result` (polls are not counted
  against the rate limits).
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
    routers = [m.router for m in (tts, vc, enhancement, svc, tta, codec, vocoder, voices, health, tasks, progress_ws,
                                  openai_speech)]
    for router in routers:
        app.include_router(router)
    # Our own flat list of HTTP routes: newer FastAPI wraps included routers, so `app.routes` no
    # longer lists their paths.
    app.state.api_routes = [r for router in routers for r in router.routes if isinstance(r, APIRoute)]
    # The playground's static page: no key, no rate limit, not part of the API description.
    app.include_router(playground.router, include_in_schema=False)
    install_error_handlers(app)
    # Added first, so it runs inside the Gatekeeper: it needs the key and task id the gate assigns.
    app.add_middleware(AsyncJobs)
    app.add_middleware(Gatekeeper, context_getter=lambda: getattr(app.state, "gate", None))
    # Added last, so it runs outside the Gatekeeper: the gate's refusals (401, 413, 429) are counted too.
    app.add_middleware(RequestMetrics, routes=app.state.api_routes)
    # Outside the gate too: its refusals on the OpenAI-compatible routes come in OpenAI's error shape.
    app.add_middleware(OpenAIErrors)
    app.openapi = lambda: _openapi(app)
    return app


def _openapi(app: FastAPI) -> dict:
    """OpenAPI with the API-key scheme declared and required on every route that needs a key."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[SECURITY_SCHEME] = {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
    schemes[BEARER_SCHEME] = {"type": "http", "scheme": "bearer", "description": "The same key as X-API-Key"}
    model_paths = task_paths(app)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if path.startswith(API_PREFIXES) and path != "/api/health":
                operation["security"] = [{SECURITY_SCHEME: []}, {BEARER_SCHEME: []}]   # either
            if path in model_paths:
                operation.setdefault("parameters", []).append({
                    "name": "X-Task-ID", "in": "header", "required": False,
                    "description": "Optional task id (8-64 chars of A-Za-z0-9_-) to follow on /ws/progress/{task_id}",
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
                })
                if method.upper() in ASYNC_METHODS:
                    operation["parameters"].append(PREFER_PARAMETER)
                    operation.setdefault("responses", {}).update(ASYNC_OPENAPI_RESPONSES)
    app.openapi_schema = schema
    return schema


def model_routes(app: FastAPI) -> list[APIRoute]:
    return [r for r in app.state.api_routes if r.path.startswith(API_PREFIXES) and r.path not in SERVICE_PATHS]


def task_paths(app: FastAPI) -> frozenset[str]:
    """Templates of the model calls, which get a task id: the model routes less the voice store's
    (which take uploads, so they keep their body limit, but run no model)."""
    return frozenset(r.path for r in model_routes(app)) - voices.PATHS


def body_limits(app: FastAPI, settings: Settings) -> dict[str, int]:
    """Route template -> most bytes its body may have: its upload fields' limits plus form fields."""
    limits = {}
    for route in model_routes(app):
        uploads = [p.name for p in route.dependant.body_params if p.name in REFERENCE_FIELDS + CONTENT_FIELDS]
        # One template may serve several methods (GET and POST /api/voices): the largest body counts.
        limits[route.path] = max(limits.get(route.path, 0),
                                 sum(field_limit(settings, f) for f in uploads) + FORM_FIELDS_ALLOWANCE)
    return limits


def configure_app(app: FastAPI, settings: Settings, backend, store) -> FastAPI:
    app.state.settings = settings
    app.state.backend = backend
    backend.call_timeout_s = settings.model_timeout_s
    app.state.store = store
    app.state.gate = GateContext(
        keys=KeyChecker(settings),
        store=store,
        route_templates=route_matcher(app.state.api_routes),
        body_limits=body_limits(app, settings),
        task_routes=task_paths(app),
        uncounted_routes=frozenset(tasks.PATHS),
    )
    return app

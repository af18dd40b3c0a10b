"""The ASGI layer in front of every route: request ids, API keys, rate limits, body size, task ids.

It runs before FastAPI reads the body, so an unauthenticated, rate-limited or oversized upload is
refused without being read. Order: 401, then 429, then 413 (from Content-Length, then counted while
the body streams), then the route's own validation. A model route's body must also arrive within
``body_timeout_s`` of the request's start, else 408: neither uvicorn nor Ray Serve's proxy has a
body-read timeout, so a client trickling its upload (slowloris) would otherwise hold a connection,
a form parser and a spool file for as long as it likes. With ``require_content_length`` on, a model
route's body must declare its length (else 411): Ray Serve's proxy reads a chunked body as fast as
the client sends it into an unbounded queue that the replica fetches whole, so the 413 counted
while it streams comes after hundreds of MB have been buffered in both processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Callable

from starlette.routing import Match

from serve_app.auth import API_KEY_HEADER, KeyChecker, presented_key
from serve_app.errors import REQUEST_ID_HEADER, new_request_id
from serve_app.progress import TASK_ID_RULE, new_task_id, valid_task_id
from serve_app.ratelimit import RateDecision

log = logging.getLogger("amphion.ingress")

TASK_ID_HEADER = "X-Task-ID"

# Open without a key: liveness probes, the API documentation and the playground page (which asks
# for the key itself and sends it with each call).
EXEMPT_PREFIXES = ("/api/docs", "/playground")
EXEMPT_PATHS = ("/api/health", "/api/openapi.json")


def is_exempt(method: str, path: str) -> bool:
    if method not in ("GET", "HEAD"):
        return False
    return path in EXEMPT_PATHS or any(path == p or path.startswith(p + "/") for p in EXEMPT_PREFIXES)


@dataclass
class GateContext:
    """What the gate needs from the application; filled when the replica starts."""

    keys: KeyChecker
    store: object                      # StateStore
    route_templates: Callable[[dict], str | None]   # scope -> matched route template or None
    body_limits: dict[str, int] = field(default_factory=dict)  # template -> max body bytes
    task_routes: frozenset[str] = frozenset()       # templates that create tasks
    # Templates that need a key but are not counted against the rate limits: polling an async job's
    # status every second must not use up the requests the job itself was allowed.
    uncounted_routes: frozenset[str] = frozenset()
    body_timeout_s: float | None = None  # None: the app's settings.body_timeout_s (see _setting)
    require_content_length: bool | None = None  # None: the app's settings.require_content_length


def _json_start(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> list[dict]:
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return [
        {"type": "http.response.start", "status": status, "headers": hdrs + headers},
        {"type": "http.response.body", "body": body},
    ]


def _encode_headers(pairs: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs.items()]


class Gatekeeper:
    def __init__(self, app, context_getter: Callable[[], GateContext | None]):
        self.app = app
        self.context_getter = context_getter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        extra: dict[str, str] = {REQUEST_ID_HEADER: request_id}
        started = False
        # Set by the guarded receive when the body goes over its limit (413) or past its deadline (408).
        refused: dict = {"status": 0, "detail": ""}

        async def reply(status: int, detail, headers: dict[str, str] | None = None):
            nonlocal started
            started = True
            body = json.dumps({"detail": detail}).encode()
            for message in _json_start(status, _encode_headers({**extra, **(headers or {})}), body):
                await send(message)

        try:
            ctx = self.context_getter()
            method, path = scope["method"], scope["path"]
            if ctx is None:
                await reply(503, "the service is starting; retry shortly")
                return
            if not is_exempt(method, path):
                headers = dict((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"])
                key_id = ctx.keys.identify(presented_key(headers))
                if key_id is None:
                    await reply(401, f"missing or invalid API key: send it in the {API_KEY_HEADER} header "
                                     "(or as Authorization: Bearer <key>)")
                    return
                scope["state"]["key_id"] = key_id
                template = ctx.route_templates(scope)
                if template is not None and template not in ctx.uncounted_routes:
                    decision = RateDecision(**await ctx.store.rate_hit(key_id, f"{method} {template}"))
                    extra.update(decision.headers())
                    if not decision.allowed:
                        await reply(429, f"rate limit exceeded: {decision.limit} requests allowed; "
                                         f"retry in {decision.retry_after_s} s")
                        return
                if template is not None:
                    limit = ctx.body_limits.get(template)
                    if limit is not None:
                        declared = headers.get("content-length")
                        if declared is not None and declared.isdigit() and int(declared) > limit:
                            await reply(413, f"request body is larger than the {limit // (1024 * 1024)} MB "
                                             "allowed for this route")
                            return
                        if (declared is None and method in ("POST", "PUT", "PATCH")
                                and _setting(ctx, scope, "require_content_length")):
                            await reply(411, "send a Content-Length header: bodies of unknown length "
                                             "(chunked) are not accepted on this route")
                            return
                        receive = _guarded_receive(receive, limit, _setting(ctx, scope, "body_timeout_s"),
                                                   refused)
                    if template in ctx.task_routes:
                        task_id = headers.get(TASK_ID_HEADER.lower())
                        if task_id is None:
                            task_id = new_task_id()
                        elif not valid_task_id(task_id):
                            await reply(400, f"{TASK_ID_HEADER} must be {TASK_ID_RULE}")
                            return
                        scope["state"]["task_id"] = task_id
                        extra[TASK_ID_HEADER] = task_id

            async def send_with_headers(message):
                nonlocal started
                if refused["status"]:
                    # The body went over the limit or past its deadline while a parser was reading
                    # it; whatever the route made of that, the client gets the 413 or 408.
                    if not started:
                        await reply(refused["status"], refused["detail"])
                    return
                if message["type"] == "http.response.start":
                    started = True
                    message = dict(message)
                    message["headers"] = list(message.get("headers", [])) + _encode_headers(extra)
                await send(message)

            await self.app(scope, receive, send_with_headers)
        except Exception:
            if refused["status"]:
                if not started:
                    await reply(refused["status"], refused["detail"])
                return
            log.exception("unhandled error, request id %s", request_id)
            if not started:
                await reply(500, f"internal server error (request id {request_id}); "
                                 "the server log has the details")


class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    pass


def _setting(ctx: GateContext, scope, name: str):
    """A body setting: the context's, else the app's settings (Starlette puts the app in the scope
    before the middleware runs, and configure_app keeps the settings on app.state); None if neither."""
    value = getattr(ctx, name, None)
    if value is None:
        settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
        value = getattr(settings, name, None)
    return value


def _guarded_receive(receive, limit: int, timeout: float | None, refused: dict):
    """``receive`` that counts body bytes against ``limit`` and gives up ``timeout`` seconds after
    the request started. Once the body is complete, later receives (a wait for the client's
    disconnect while the model runs) pass through with no deadline."""
    seen = 0
    done = False
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout

    async def guarded():
        nonlocal seen, done
        if done or deadline is None:
            message = await receive()
        else:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
            except asyncio.TimeoutError:
                refused["status"] = 408
                refused["detail"] = f"request body not received within {timeout:g} s; send it faster"
                raise BodyTimeout() from None
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                refused["status"] = 413
                refused["detail"] = (f"request body is larger than the {limit // (1024 * 1024)} MB "
                                     "allowed for this route")
                raise BodyTooLarge()
            done = done or not message.get("more_body", False)
        else:
            done = True  # http.disconnect: nothing more will come
        return message

    return guarded


def route_matcher(routes) -> Callable[[dict], str | None]:
    """scope -> the template of the route that fully matches it (None: no route, or wrong method)."""

    def match(scope) -> str | None:
        for route in routes:
            matched, _ = route.matches(scope)
            if matched == Match.FULL:
                return getattr(route, "path", None)
        return None

    return match

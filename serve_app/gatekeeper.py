"""The ASGI layer in front of every route: request ids, API keys, rate limits, body size, task ids.

It runs before FastAPI reads the body, so an unauthenticated, rate-limited or oversized upload is
refused without being read. Order: 401, then 429, then 413 (from Content-Length, then counted while
the body streams), then the route's own validation.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Callable

from starlette.routing import Match

from serve_app.auth import API_KEY_HEADER, KeyChecker
from serve_app.errors import REQUEST_ID_HEADER, new_request_id
from serve_app.progress import TASK_ID_RULE, new_task_id, valid_task_id
from serve_app.ratelimit import RateDecision

log = logging.getLogger("amphion.ingress")

TASK_ID_HEADER = "X-Task-ID"

# Open without a key: liveness probes and the API documentation.
EXEMPT_PREFIXES = ("/api/docs",)
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
        too_large = {"hit": False, "limit": 0}

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
                key_id = ctx.keys.identify(headers.get(API_KEY_HEADER.lower()))
                if key_id is None:
                    await reply(401, f"missing or invalid API key: send it in the {API_KEY_HEADER} header")
                    return
                scope["state"]["key_id"] = key_id
                template = ctx.route_templates(scope)
                if template is not None:
                    decision = RateDecision(**await ctx.store.rate_hit(key_id, f"{method} {template}"))
                    extra.update(decision.headers())
                    if not decision.allowed:
                        await reply(429, f"rate limit exceeded: {decision.limit} requests allowed; "
                                         f"retry in {decision.retry_after_s} s")
                        return
                    limit = ctx.body_limits.get(template)
                    if limit is not None:
                        declared = headers.get("content-length")
                        if declared is not None and declared.isdigit() and int(declared) > limit:
                            await reply(413, f"request body is larger than the {limit // (1024 * 1024)} MB "
                                             "allowed for this route")
                            return
                        receive = _counting_receive(receive, limit, too_large)
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
                if too_large["hit"]:
                    # The body went over the limit while a parser was reading it; whatever the
                    # route made of that, the client gets a 413.
                    if not started:
                        await reply(413, f"request body is larger than the "
                                         f"{too_large['limit'] // (1024 * 1024)} MB allowed for this route")
                    return
                if message["type"] == "http.response.start":
                    started = True
                    message = dict(message)
                    message["headers"] = list(message.get("headers", [])) + _encode_headers(extra)
                await send(message)

            await self.app(scope, receive, send_with_headers)
        except Exception:
            if too_large["hit"]:
                if not started:
                    await reply(413, f"request body is larger than the "
                                     f"{too_large['limit'] // (1024 * 1024)} MB allowed for this route")
                return
            log.exception("unhandled error, request id %s", request_id)
            if not started:
                await reply(500, f"internal server error (request id {request_id}); "
                                 "the server log has the details")


class BodyTooLarge(Exception):
    pass


def _counting_receive(receive, limit: int, flag: dict):
    seen = 0

    async def counted():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                flag["hit"], flag["limit"] = True, limit
                raise BodyTooLarge()
        return message

    return counted


def route_matcher(routes) -> Callable[[dict], str | None]:
    """scope -> the template of the route that fully matches it (None: no route, or wrong method)."""

    def match(scope) -> str | None:
        for route in routes:
            matched, _ = route.matches(scope)
            if matched == Match.FULL:
                return getattr(route, "path", None)
        return None

    return match

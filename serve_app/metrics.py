"""The ingress's Prometheus metrics (Ray's metrics API, see ``deployments.metrics``) and the ASGI
middleware that records them.

:class:`RequestMetrics` wraps the whole application, the Gatekeeper included, so every answer is
counted, the gate's own refusals too (401, 408, 411, 413, 429): requests by route template, method
and status, their latency, the request body bytes received (a counter, exact, and a histogram of
sizes), rate-limit refusals, and the stages the route reported in its ``Server-Timing`` header
(decode, model, compute, encode...). The backend counts the calls waiting on each deployment
(:data:`pending_calls`), the ingress's view of queue depth.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from typing import Callable

from starlette.routing import Match

from deployments.metrics import BYTES_BUCKETS, SECONDS_BUCKETS, Counter, Gauge, Histogram, InFlight, recording
from serve_app.gatekeeper import EXEMPT_PATHS, EXEMPT_PREFIXES

HTTP_REQUESTS = Counter("amphion_http_requests", "HTTP requests answered, by route template, method and status",
                        ("route", "method", "status"))
HTTP_SECONDS = Histogram("amphion_http_request_duration_seconds", "Time from a request's arrival to the "
                         "end of its answer", ("route", "method"), SECONDS_BUCKETS)
UPLOAD_BYTES = Counter("amphion_http_upload_bytes", "Request body bytes received (uploads)", ("route",))
BODY_BYTES = Histogram("amphion_http_request_body_bytes", "Size of request bodies (uploads)", ("route",),
                       BYTES_BUCKETS)
RATE_LIMITED = Counter("amphion_rate_limited_requests", "Requests refused for a rate limit (429)", ("route",))
HTTP_STAGE_SECONDS = Histogram("amphion_http_stage_duration_seconds", "Stages of a request as its "
                               "Server-Timing header reports them (decode, model, compute, encode, ...)",
                               ("route", "stage"), SECONDS_BUCKETS)
PENDING_CALLS = Gauge("amphion_ingress_pending_calls", "Calls from the ingress to a deployment not yet "
                      "answered (queued in Serve or running)", ("deployment",))

#: ``with pending_calls(deployment=name): ...`` around a call to a model deployment.
pending_calls = InFlight(PENDING_CALLS)

#: The ``route`` tag of a path that matches no route (scanners, typos): one label for them all.
UNMATCHED = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# `name;dur=12.3` entries of a Server-Timing header; stage names are ours, checked all the same.
_TIMING = re.compile(r"^\s*([A-Za-z0-9_-]{1,32})\s*(?:;.*?)?;\s*dur=([0-9.]+)")


def route_labeller(routes) -> Callable[[dict], str]:
    """scope -> its ``route`` tag: the template of the API route its path matches (whatever the
    method: a 405 still names it), else the open pages' prefix (docs, playground), else
    :data:`UNMATCHED`. Never the path itself: ids in paths would make a series per id."""
    routes = list(routes)
    open_paths = tuple(EXEMPT_PATHS) + tuple(EXEMPT_PREFIXES)

    # Whether a route's path matches depends on the path alone (the method only decides FULL or
    # PARTIAL), so labels are kept per path: a few dozen paths in practice, bounded all the same.
    @functools.lru_cache(maxsize=1024)
    def of_path(root_path: str, path: str) -> str:
        scope = {"type": "http", "path": path, "method": "GET", "root_path": root_path}
        for route in routes:
            matched, _ = route.matches(scope)
            if matched != Match.NONE:
                return route.path
        path = path[len(root_path):] if root_path and path.startswith(root_path) else path
        return next((p for p in open_paths if path == p or path.startswith(p + "/")), UNMATCHED)

    return lambda scope: of_path(scope.get("root_path", ""), scope.get("path", ""))


def server_timing(value: str) -> list[tuple[str, float]]:
    """``[(stage, seconds)]`` from a Server-Timing header value."""
    stages = []
    for entry in value.split(","):
        found = _TIMING.match(entry)
        if found:
            stages.append((found.group(1), float(found.group(2)) / 1000.0))
    return stages


class RequestMetrics:
    """ASGI middleware recording every HTTP request (WebSockets pass through)."""

    def __init__(self, app, routes=()):
        self.app = app
        self.route_of = route_labeller(routes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not recording():
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen = {"status": 0, "body": 0, "timing": ""}

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                seen["body"] += len(message.get("body", b""))
            return message

        async def watching_send(message):
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["timing"] = next((v.decode("latin-1") for k, v in message.get("headers", ())
                                       if k.lower() == b"server-timing"), "")
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except asyncio.CancelledError:
            seen["status"] = seen["status"] or 499   # the client went away before an answer
            raise
        except Exception:
            seen["status"] = seen["status"] or 500   # the server answers 500 for what escaped
            raise
        finally:
            self._record(scope, seen, time.perf_counter() - started)

    def _record(self, scope, seen: dict, seconds: float) -> None:
        route = self.route_of(scope)
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
        status = seen["status"] or 500
        HTTP_REQUESTS.inc(route=route, method=method, status=status)
        HTTP_SECONDS.observe(seconds, route=route, method=method)
        if seen["body"] or method in ("POST", "PUT", "PATCH"):
            UPLOAD_BYTES.inc(seen["body"], route=route)
            BODY_BYTES.observe(seen["body"], route=route)
        if status == 429:
            RATE_LIMITED.inc(route=route)
        for stage, stage_seconds in server_timing(seen["timing"]):
            HTTP_STAGE_SECONDS.observe(stage_seconds, route=route, stage=stage)

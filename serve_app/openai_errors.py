"""OpenAI's error shape on the OpenAI-compatible routes (``/v1/...``).

Every error our stack produces is ``{"detail": ...}`` (the gate's 401/413/429, the routes' 4xx, the
handlers' 5xx). OpenAI's clients read ``{"error": {"message", "type", "param", "code"}}`` instead,
so this ASGI layer, outside the gate, rewrites the error bodies of ``/v1`` responses: one place,
whatever produced the error. Statuses and headers (Retry-After, X-RateLimit-*) are kept.
"""

from __future__ import annotations

import json

OPENAI_PREFIX = "/v1/"

#: status -> (OpenAI error type, code): what OpenAI's API answers for the same situation.
ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "not_found"),
    408: ("invalid_request_error", "timeout"),
    409: ("invalid_request_error", "conflict"),
    411: ("invalid_request_error", "length_required"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    422: ("invalid_request_error", "invalid_value"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "service_unavailable"),
}

#: The error body's schema, for the routes' OpenAPI responses.
ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "object", "properties": {
        "message": {"type": "string"}, "type": {"type": "string"},
        "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]},
    }, "required": ["message", "type", "param", "code"]}},
    "required": ["error"],
}


def openai_error(status: int, detail) -> dict:
    """``{"error": ...}`` for a status and our ``detail`` (a string, or FastAPI's 422 list)."""
    kind, code = ERROR_KINDS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    param = None
    if isinstance(detail, list):   # FastAPI's validation errors: name the first field, join the messages
        fields = [e.get("loc", [])[-1] for e in detail if isinstance(e, dict) and e.get("loc")]
        param = str(fields[0]) if fields else None
        message = "; ".join(f"{e.get('loc', [])[-1] if e.get('loc') else 'body'}: {e.get('msg', '')}"
                            for e in detail if isinstance(e, dict)) or "invalid request"
    else:
        message = str(detail)
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class OpenAIErrors:
    """Rewrites ``{"detail"}`` error bodies of ``/v1`` responses into OpenAI's shape."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(OPENAI_PREFIX):
            await self.app(scope, receive, send)
            return
        held: dict = {}

        async def rewriting_send(message):
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held["start"], held["body"] = message, b""
                return
            if "start" not in held or message["type"] != "http.response.body":
                await send(message)
                return
            held["body"] += message.get("body", b"")
            if message.get("more_body", False):
                return
            start = held.pop("start")
            body = _rewritten(start["status"], held.pop("body"))
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length",
                                                                                      b"content-type")]
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewriting_send)


def _rewritten(status: int, body: bytes) -> bytes:
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "error" in parsed and "detail" not in parsed:
        return body   # already OpenAI's shape
    detail = parsed.get("detail") if isinstance(parsed, dict) and "detail" in parsed else (
        body.decode("utf-8", "replace").strip() or "error")
    return json.dumps(openai_error(status, detail)).encode()

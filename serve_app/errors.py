"""HTTP error mapping: every error is JSON `{"detail": ...}`; nothing internal reaches the client.

Request ids tie a 500 the client saw to the server log line that has the traceback.
"""

from __future__ import annotations

import logging
import re
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.encoders import jsonable_encoder

from deployments.errors import ModelError
from serve_app.audio_io import InvalidAudio, UnsupportedMediaType
from serve_app.tokens import InvalidTokens

log = logging.getLogger("amphion.ingress")

REQUEST_ID_HEADER = "X-Request-ID"


class APIError(Exception):
    """An error the ingress raises on purpose: status code plus a user-facing detail."""

    def __init__(self, status_code: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers or {}


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def error_response(status_code: int, detail, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


def internal_error_response(request_id: str) -> JSONResponse:
    return error_response(
        500,
        f"internal server error (request id {request_id}); the server log has the details",
        {REQUEST_ID_HEADER: request_id},
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return error_response(exc.status_code, exc.detail, exc.headers)

    @app.exception_handler(UnsupportedMediaType)
    async def _unsupported(request: Request, exc: UnsupportedMediaType):
        return error_response(415, exc.detail)

    @app.exception_handler(InvalidAudio)
    async def _invalid_audio(request: Request, exc: InvalidAudio):
        return error_response(400, exc.detail)

    @app.exception_handler(InvalidTokens)
    async def _invalid_tokens(request: Request, exc: InvalidTokens):
        return error_response(400, exc.detail)

    @app.exception_handler(ModelError)
    async def _model_error(request: Request, exc: ModelError):
        if exc.status_code >= 500 and exc.status_code != 503:
            return internal_error_response(_request_id(request))
        return error_response(exc.status_code, exc.detail, getattr(exc, "retry_headers", dict)())

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        return error_response(exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        # FastAPI's list form, minus "input": it may hold uploaded content or a long text.
        errors = [_client_safe(e) for e in exc.errors()]
        return error_response(422, jsonable_encoder(errors))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        request_id = _request_id(request)
        log.exception("unhandled error, request id %s", request_id)
        return internal_error_response(request_id)


_CLASS_REPR = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")


def _client_safe(error: dict) -> dict:
    """One validation error without "input"/"url", without Python reprs in "msg" (pydantic's
    "Expected UploadFile, received: <class 'str'>" when a file field is sent as a text field), and
    without ctx["error"] (the exception object, which serializes to `{}`; "msg" already says it)."""
    error = {k: v for k, v in error.items() if k not in ("input", "url")}
    msg = error.get("msg")
    if isinstance(msg, str):
        if "Expected UploadFile" in msg:
            msg = "Expected a file upload (a multipart file part), received a plain form field"
        error["msg"] = _CLASS_REPR.sub(r"\1", msg)
    ctx = error.get("ctx")
    if isinstance(ctx, dict) and "error" in ctx:
        ctx = {k: v for k, v in ctx.items() if k != "error"}
        if ctx:
            error["ctx"] = ctx
        else:
            error.pop("ctx")
    return error


def _request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id") or new_request_id()

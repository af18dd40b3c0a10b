"""OpenAI's error shape on /v1 (serve_app/openai_errors.py), and the Bearer form of the key."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from serve_app.auth import presented_key
from serve_app.errors import APIError, install_error_handlers
from serve_app.openai_errors import OpenAIErrors


class Body(BaseModel):
    speed: float


def app() -> TestClient:
    api = FastAPI()
    install_error_handlers(api)

    @api.post("/v1/speech")
    async def speech(body: Body):
        raise APIError(404, "model 'tts-9' does not exist", headers={"Retry-After": "1"})

    @api.post("/api/speech")
    async def ours(body: Body):
        raise APIError(404, "no such thing")

    @api.get("/v1/ok")
    async def ok():
        return {"fine": True}

    api.add_middleware(OpenAIErrors)
    return TestClient(api)


def test_v1_errors_come_in_openai_shape_with_status_and_headers_kept():
    client = app()
    r = client.post("/v1/speech", json={"speed": 1})
    assert r.status_code == 404 and r.headers["retry-after"] == "1"
    assert r.json() == {"error": {"message": "model 'tts-9' does not exist", "type": "invalid_request_error",
                                  "param": None, "code": "not_found"}}
    assert int(r.headers["content-length"]) == len(r.content)

    r = client.post("/v1/speech", json={"speed": "fast"})          # FastAPI's 422 list
    error = r.json()["error"]
    assert r.status_code == 422 and error["param"] == "speed" and "speed" in error["message"]


def test_other_paths_and_successes_are_untouched():
    client = app()
    assert client.post("/api/speech", json={"speed": 1}).json() == {"detail": "no such thing"}
    assert client.get("/v1/ok").json() == {"fine": True}


def test_the_key_comes_from_x_api_key_or_a_bearer_token():
    assert presented_key({"x-api-key": "k1"}) == "k1"
    assert presented_key({"authorization": "Bearer k2"}) == "k2"
    assert presented_key({"authorization": "bearer  k3 "}) == "k3"
    assert presented_key({"x-api-key": "k1", "authorization": "Bearer k2"}) == "k1"
    assert presented_key({"authorization": "Basic a2V5"}) is None
    assert presented_key({"authorization": "Bearer "}) is None
    assert presented_key({}) is None

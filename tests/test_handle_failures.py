"""What a DeploymentHandle call's system failure becomes for the client, at both hops (ingress -> entry
in serve_app/backend.py, entry -> part in deployments/components.PartHandles): a full queue is a 503
with Retry-After, a dead replica a 503 naming a retry, anything else stays what it was."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from ray.exceptions import ActorDiedError
from ray.serve.exceptions import BackPressureError

from deployments.components import PartHandles
from deployments.errors import InvalidModelInput, ModelBusy, ModelUnavailable
from serve_app.backend import ServeBackend
from serve_app.errors import install_error_handlers


class FailingHandle:
    """A stand-in for a DeploymentHandle whose every method call raises ``exc``."""

    deployment_name = "BigVGAN"

    def __init__(self, exc: BaseException):
        self._exc = exc

    def __getattr__(self, method):
        exc = self._exc

        class _Method:
            def remote(self, *args):
                async def fail():
                    raise exc
                return fail()

        return _Method()


def backpressure() -> BackPressureError:
    return BackPressureError(num_queued_requests=17, max_queued_requests=16)


@pytest.mark.parametrize("exc, kind, words", [
    (backpressure(), ModelBusy, "at capacity"),
    (ActorDiedError(), ModelUnavailable, "lost the replica"),
])
def test_both_hops_map_system_failures_to_503s(exc, kind, words):
    backend = ServeBackend({"BigVGAN": FailingHandle(exc)})
    with pytest.raises(kind) as raised:
        asyncio.run(backend.call("BigVGAN", "vocode", {}))
    assert words in raised.value.detail and "retry" in raised.value.detail

    parts = PartHandles({"BigVGAN": FailingHandle(exc)}, {}, frozenset(), None, "MaskGCT")
    with pytest.raises(kind) as raised:
        asyncio.run(parts.call("BigVGAN", "run"))
    assert raised.value.detail.startswith("MaskGCT: ") and words in raised.value.detail


def test_other_errors_pass_through_unchanged():
    backend = ServeBackend({"BigVGAN": FailingHandle(InvalidModelInput("mel has 81 bands, not 80"))})
    with pytest.raises(InvalidModelInput, match="81 bands"):
        asyncio.run(backend.call("BigVGAN", "vocode", {}))
    backend = ServeBackend({"BigVGAN": FailingHandle(ZeroDivisionError())})
    with pytest.raises(ZeroDivisionError):   # a bug: the app's 500 handler gives it a request id
        asyncio.run(backend.call("BigVGAN", "vocode", {}))


def test_a_full_queue_answers_503_with_retry_after():
    app = FastAPI()
    install_error_handlers(app)
    backend = ServeBackend({"BigVGAN": FailingHandle(backpressure())})

    @app.post("/vocode")
    async def vocode():
        return await backend.call("BigVGAN", "vocode", {})

    r = TestClient(app).post("/vocode")
    assert r.status_code == 503
    assert r.headers["retry-after"] == str(ModelBusy.retry_after_s)
    assert "at capacity" in r.json()["detail"]


class SlowService:
    async def vocode(self, payload):
        await asyncio.sleep(payload["seconds"])
        return "done"


def test_a_call_past_the_deadline_is_cancelled_and_answers_503_busy():
    from serve_app.backend import NO_DEADLINE, LocalBackend

    backend = LocalBackend({"BigVGAN": SlowService()})
    backend.call_timeout_s = 0.1
    with pytest.raises(ModelBusy, match="did not answer within 0.1 s"):
        asyncio.run(backend.call("BigVGAN", "vocode", {"seconds": 5}))
    assert asyncio.run(backend.call("BigVGAN", "vocode", {"seconds": 0.01})) == "done"

    async def as_async_job():
        NO_DEADLINE.set(True)     # what the async-job runner does for its background work
        return await backend.call("BigVGAN", "vocode", {"seconds": 0.3})

    assert asyncio.run(as_async_job()) == "done"


def test_a_part_error_arriving_as_rays_wrapper_crosses_the_next_hop_as_ours():
    """Ray raises a part's error in the caller as a RayTaskError subclass of it; the entry re-raises
    a plain instance of our class (Ray cannot wrap its own wrapper again: that was a 500)."""
    from ray.exceptions import RayTaskError

    for cls in (ModelBusy, ModelUnavailable, InvalidModelInput):
        wrapped = RayTaskError("generate", "traceback text", cls("no singer named 'nobody at all'"))
        wrapped = wrapped.as_instanceof_cause()
        assert isinstance(wrapped, cls) and type(wrapped) is not cls
        parts = PartHandles({"SVCVitsAcoustic": FailingHandle(wrapped)}, {}, frozenset(), None, "SVC")
        with pytest.raises(cls) as raised:
            asyncio.run(parts.call("SVCVitsAcoustic", "generate"))
        assert type(raised.value) is cls and "nobody at all" in raised.value.detail

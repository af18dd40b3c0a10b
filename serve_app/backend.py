"""How routes reach the models: through Ray Serve DeploymentHandles, or in-process.

Routes only see `call`, `describe` and `info`, so the same FastAPI app runs as the Serve ingress
and as a plain FastAPI process (the serving-overhead benchmark's baseline, and unit tests).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

from deployments.errors import ModelBusy, ModelError, ModelNotDeployed, ModelUnavailable, handle_call_failure
from serve_app.metrics import pending_calls

log = logging.getLogger("amphion.ingress")

INFO_TIMEOUT_S = 3.0
#: Health status of a model whose family this application leaves out (``args.models``).
NOT_DEPLOYED = "not_deployed"


def _not_running(deployment: str, why: str) -> dict:
    return {"status": "not_running", "running": False, "weights": None,
            "detail": f"deployment {deployment} {why}"}


#: Set in the context of an async job (Prefer: respond-async): its model calls have no deadline.
NO_DEADLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("amphion_no_deadline", default=False)


class _Backend:
    #: Seconds a model call may take, queueing included (settings.model_timeout_s; None: no limit).
    call_timeout_s: float | None = None

    def __init__(self):
        self._described: dict[str, dict] = {}

    def _target(self, deployment: str):
        raise NotImplementedError

    async def _invoke(self, target, method: str, *args):
        raise NotImplementedError

    async def call(self, deployment: str, method: str, payload: dict):
        """``method(payload)`` on ``deployment``; cancelled after ``call_timeout_s`` (503, Retry-After)
        unless this context runs an async job (:data:`NO_DEADLINE`)."""
        timeout = None if NO_DEADLINE.get() else self.call_timeout_s
        with pending_calls(deployment=deployment):
            try:
                return await asyncio.wait_for(self._invoke(self._target(deployment), method, payload), timeout)
            except asyncio.TimeoutError:
                raise ModelBusy(f"deployment {deployment} did not answer within {timeout:g} s (busy or slow); "
                                "retry later, or send 'Prefer: respond-async' for a long job") from None

    async def describe(self, deployment: str) -> dict:
        """Static facts about a deployment's model (sample rate, mel size); cached once known."""
        spec = self._described.get(deployment)
        if spec is None:
            spec = await self._invoke(self._target(deployment), "describe")
            self._described[deployment] = spec
        return spec

    async def info(self, deployment: str, model: str | None = None) -> dict:
        """The deployment's health for ``model`` (a registry key; an entry may serve several)."""
        try:
            target = self._target(deployment)
            return await asyncio.wait_for(self._invoke(target, "info", model), INFO_TIMEOUT_S)
        except ModelNotDeployed as exc:  # left out by args.models: not a fault of this application
            return {"status": NOT_DEPLOYED, "running": False, "weights": None, "detail": exc.detail}
        except ModelUnavailable as exc:
            return _not_running(deployment, f"is not available: {exc.detail}")
        except asyncio.TimeoutError:
            return _not_running(deployment, f"did not answer within {INFO_TIMEOUT_S:.0f} s")
        except Exception:
            log.exception("health query to %s failed", deployment)
            return _not_running(deployment, "did not answer")


class ServeBackend(_Backend):
    def __init__(self, handles: dict):
        super().__init__()
        self.handles = handles

    def _target(self, deployment: str):
        handle = self.handles.get(deployment)
        if handle is None:
            raise ModelNotDeployed.for_deployment(deployment)
        return handle

    async def _invoke(self, handle, method: str, *args):
        try:
            return await getattr(handle, method).remote(*args)
        except ModelError:
            raise
        except Exception as exc:
            failure = handle_call_failure(exc, handle.deployment_name, "serving this request")
            if failure is None:
                raise
            log.warning("deployment %s: %s during %s", handle.deployment_name, type(exc).__name__, method)
            raise failure from None


class LocalBackend(_Backend):
    """Services living in this process (plain objects of the deployment classes)."""

    def __init__(self, services: dict):
        super().__init__()
        self.services = services

    def _target(self, deployment: str):
        service = self.services.get(deployment)
        if service is None:
            raise ModelNotDeployed.for_deployment(deployment)
        return service

    async def _invoke(self, service, method: str, *args):
        return await getattr(service, method)(*args)

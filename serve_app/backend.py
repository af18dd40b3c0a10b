"""How routes reach the models: through Ray Serve DeploymentHandles, or in-process.

Routes only see `call`, `describe` and `info`, so the same FastAPI app runs as the Serve ingress
and as a plain FastAPI process (the serving-overhead benchmark's baseline, and unit tests).
"""

from __future__ import annotations

import asyncio
import logging

from deployments.errors import ModelError, ModelUnavailable, handle_call_failure

log = logging.getLogger("amphion.ingress")

INFO_TIMEOUT_S = 3.0


def _not_running(deployment: str, why: str) -> dict:
    return {"status": "not_running", "running": False, "weights": None,
            "detail": f"deployment {deployment} {why}"}


class _Backend:
    def __init__(self):
        self._described: dict[str, dict] = {}

    def _target(self, deployment: str):
        raise NotImplementedError

    async def _invoke(self, target, method: str, *args):
        raise NotImplementedError

    async def call(self, deployment: str, method: str, payload: dict):
        return await self._invoke(self._target(deployment), method, payload)

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
            raise ModelUnavailable(f"deployment {deployment} is not part of this application")
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
            raise ModelUnavailable(f"deployment {deployment} is not part of this application")
        return service

    async def _invoke(self, service, method: str, *args):
        return await getattr(service, method)(*args)

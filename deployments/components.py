"""Pipeline parts as deployments, and the handles a pipeline deployment calls them through.

A model family's in-process pipeline (``models.<family>.pipeline``) loads any subset of its parts
(``Pipeline.from_weights(mode, parts=(part,))``) and exposes its stages as numpy-in, numpy-out methods
(``LocalStages``). :class:`PartService` is one such part behind the deployment API: the stages run in
a worker thread, a generating stage reports progress for the request's task id, the family's input
errors become 400s, and missing weights a 503 with the reason. :class:`PartHandles` is the other
side: the family's async stages protocol over those deployments' handles, so the family's orchestrator
runs unchanged whether its stages are in process or on other replicas.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from deployments.errors import InvalidModelInput, ModelError, ModelUnavailable
from deployments.runtime import configure_torch, progress_store, select_device, select_dtype
from models.weights import WeightsUnavailable
from serve_app.progress import ProgressReporter

log = logging.getLogger("amphion.components")

INFO_TIMEOUT_S = 2.5


class PartService:
    """One part of a pipeline. Subclasses say how to load it (:meth:`_load`) and wrap it in stages
    (:meth:`_stages`); ``stages`` names what callers may run, ``generating`` those that report
    progress (they take ``(request, emit)``), ``input_errors`` the family's input errors."""

    label = ""
    stages: tuple[str, ...] = ()
    generating: frozenset[str] = frozenset()
    input_errors: tuple[type[Exception], ...] = ()

    def __init__(self, part: str, weights: str = "auto", device: str | None = None, torch_threads: int | None = None,
                 store=None, cache_dir: str | None = None, dtype: str | None = None):
        configure_torch(torch_threads)
        self.part = part
        self.store = store if store is not None else progress_store()
        self.pipeline = None
        self.local = None
        self.unavailable = ""
        try:
            device = select_device(device)
            self.pipeline = self._load(part, weights, device, select_dtype(dtype, device), cache_dir)
            self.local = self._stages(self.pipeline)
            log.info("%s %s loaded (%s weights)", self.label, part, self.pipeline.weights_kind)
        except WeightsUnavailable as exc:
            self.unavailable = str(exc)
            log.error("%s %s unavailable: %s", self.label, part, exc)

    def _load(self, part: str, weights: str, device: str, dtype, cache_dir: str | None):
        raise NotImplementedError

    def _stages(self, pipeline):
        raise NotImplementedError

    def _require(self):
        if self.local is None:
            raise ModelUnavailable(f"{self.label} {self.part} has no weights: {self.unavailable}")
        return self.local

    async def describe(self) -> dict:
        self._require()
        return {"weights": self.pipeline.weights_kind, "part": self.part}

    async def info(self) -> dict:
        if self.pipeline is None:
            return {"status": "unavailable", "running": True, "weights": None, "detail": f"no weights: {self.unavailable}"}
        return {"status": "ready", "running": True, "weights": self.pipeline.weights_kind,
                "detail": getattr(self.pipeline, "note", "") or ""}

    def _checked(self, fn: Callable, *args):
        try:
            return fn(*args)
        except self.input_errors as exc:
            raise InvalidModelInput(str(exc)) from None

    def _method(self, stage: str):
        if stage not in self.stages:
            raise ModelUnavailable(f"{self.label} {self.part} does not run the {stage!r} stage")
        return getattr(self._require(), stage)

    async def run(self, stage: str, *args):
        """A one-shot stage (numpy in and out)."""
        return await asyncio.to_thread(self._checked, self._method(stage), *args)

    async def generate(self, stage: str, request: dict) -> dict:
        """A generating stage; progress events go to ``request["task_id"]``."""
        if stage not in self.generating:
            raise ModelUnavailable(f"{self.label} {self.part}: {stage!r} is not a generating stage")
        progress = ProgressReporter(self.store, request.get("task_id"))
        emit = lambda name, step, total: progress.step(name, step, total)  # noqa: E731
        return await asyncio.to_thread(self._checked, self._method(stage), request, emit)


class PartHandles:
    """A family's stages protocol over part deployments: ``stage_owner`` maps each stage to the
    deployment that runs it; ``handles`` maps deployment names to handles (or local stand-ins)."""

    def __init__(self, handles: dict, stage_owner: dict[str, str], generating: frozenset[str], task_id: str | None,
                 family: str):
        self.handles = handles
        self.stage_owner = stage_owner
        self.generating = generating
        self.task_id = task_id
        self.family = family

    async def call(self, deployment: str, method: str, *args):
        handle = self.handles.get(deployment)
        if handle is None:
            raise ModelUnavailable(f"{self.family}: deployment {deployment} is not part of this application")
        try:
            return await getattr(handle, method).remote(*args)
        except ModelError as exc:  # re-raised as a plain instance, so it crosses the next hop intact
            kind = ModelUnavailable if isinstance(exc, ModelUnavailable) else InvalidModelInput
            raise kind(getattr(exc, "detail", str(exc))) from None

    def __getattr__(self, stage: str):
        owner = self.__dict__["stage_owner"].get(stage)
        if owner is None:
            raise AttributeError(stage)
        if stage in self.generating:
            async def generating(request: dict):
                return await self.call(owner, "generate", stage, {**request, "task_id": self.task_id})
            return generating

        async def one_shot(*args):
            return await self.call(owner, "run", stage, *args)
        return one_shot


async def components_info(handles: dict, names) -> dict[str, dict]:
    """Each named deployment's ``info()`` (not_running when absent or silent)."""
    async def one(name: str) -> dict:
        handle = handles.get(name)
        if handle is None:
            return {"status": "not_running", "weights": None, "detail": "not part of this application"}
        try:
            return await asyncio.wait_for(handle.info.remote(), INFO_TIMEOUT_S)
        except asyncio.TimeoutError:
            return {"status": "not_running", "weights": None, "detail": f"no answer in {INFO_TIMEOUT_S:g} s"}
        except Exception as exc:
            return {"status": "not_running", "weights": None, "detail": f"did not answer ({type(exc).__name__})"}

    names = list(names)
    return dict(zip(names, await asyncio.gather(*(one(n) for n in names))))


def summarize_info(infos: dict[str, dict], extra_problems: list[str] | None = None) -> dict:
    """A pipeline's health from its components': ready only when all are."""
    problems = list(extra_problems or []) + [f"{name}: {i['status']} ({i.get('detail') or ''})"
                                             for name, i in infos.items() if i.get("status") != "ready"]
    kinds = sorted({i.get("weights") for i in infos.values() if i.get("weights")})
    weights = kinds[0] if len(kinds) == 1 else ("+".join(kinds) or None)
    if problems:
        return {"status": "unavailable", "running": True, "weights": weights, "detail": "; ".join(problems)}
    return {"status": "ready", "running": True, "weights": weights, "detail": ""}

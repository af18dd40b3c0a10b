"""The lifecycle every model deployment shares, in one place.

A service loads its model when the replica starts (:meth:`ModelService._load`); in weights mode
``auto`` missing official files are downloaded in the background first (``deployments.fetching``:
503 "downloading" meanwhile). When the weights or data are missing it stays up and remembers why:
``info()`` reports ``unavailable`` with the reason and every call answers :class:`ModelUnavailable`
(HTTP 503) with it, instead of the replica crash-looping. ``describe()`` gives the static facts
callers need (sample rate, sizes); progress events go to the shared store. Services are plain
classes: tests and scripts use them without Ray, ``serve.deployment`` wraps them unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from deployments import metrics
from deployments.errors import ModelUnavailable
from deployments.fetching import Attempt, StartupDownload, attempt_load
from deployments.progress import ProgressReporter, progress_store
from deployments.runtime import configure_allocator, configure_torch, select_device, select_dtype
from models.weights import downloads_allowed

log = logging.getLogger("amphion.deployments")


@dataclass(frozen=True)
class Loading:
    """How this replica loads weights: the application's ``weights`` mode, device, dtype, cache."""

    weights: str
    device: str
    dtype: Any
    cache_dir: str | None


@dataclass(frozen=True)
class Loaded:
    """What :meth:`ModelService._load` returns: the model, which weights it holds, a note for health."""

    model: Any
    weights_kind: str | None
    note: str = ""


#: The constructor arguments every service takes (the application's ``args`` for model loading).
LOADING_ARGS = ("weights", "device", "torch_threads", "cache_dir", "dtype")


class ModelService:
    """Base of every model deployment. Subclasses set ``label`` (how 503 details name the model)
    and implement :meth:`_load`; ``load_errors`` lists exceptions besides ``WeightsUnavailable``
    that mean "cannot serve, say why" (missing data files, say)."""

    label = "model"
    #: What the 503 detail says is missing.
    missing = "has no weights"
    load_errors: tuple[type[Exception], ...] = ()
    #: Whether the model runs :mod:`models.core.compute`'s compiled kernels (the codecs and
    #: vocoders): they are compiled at start, not by the first request (when compiling is on).
    compiled_kernels = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Every request a replica answers is counted and timed (deployments.metrics).
        metrics.meter_requests(cls)

    def __init__(self, weights: str = "auto", device: str | None = None, torch_threads: int | None = None,
                 store=None, cache_dir: str | None = None, dtype: str | None = None):
        configure_torch(torch_threads)
        configure_allocator()
        self.store = store if store is not None else progress_store()
        self.loaded: Loaded | None = None
        self.unavailable = ""
        #: Weights "auto" fetching missing official files at start-up (deployments.fetching), else None.
        self.fetching: StartupDownload | None = None
        device = self._device = select_device(device)
        loading = Loading(weights, device, select_dtype(dtype, device), cache_dir)
        first = attempt_load(self, loading)
        if weights == "auto" and first.missing and downloads_allowed():
            self.fetching = StartupDownload(self.label, first, lambda: attempt_load(self, loading), self._settle,
                                            cache_dir)
            self.fetching.start()
        else:
            self._settle(first)

    def _settle(self, attempt: Attempt) -> None:
        """Serve what a load gave (called once: at start, or when the start-up download is over)."""
        self.loaded, self.unavailable = attempt.loaded, attempt.unavailable
        if self.loaded is not None:
            if self.compiled_kernels:
                from models.core.compute import warm_up

                warm_up(self._device)
            log.info("%s ready (%s weights)", self.label, self.loaded.weights_kind)
        else:
            log.error("%s unavailable: %s", self.label, self.unavailable)
        self.fetching = None  # last: a reader that sees no download sees its result

    # -- to implement ------------------------------------------------------------------------------
    def _load(self, loading: Loading) -> Loaded:
        raise NotImplementedError

    def _facts(self) -> dict:
        """Static facts for :meth:`describe` (called only when loaded)."""
        return {}

    # -- shared ------------------------------------------------------------------------------------
    @property
    def weights_kind(self) -> str | None:
        return None if self.loaded is None else self.loaded.weights_kind

    def _require(self):
        """The loaded model, or ModelUnavailable (503) with the reason it is not."""
        fetching = self.fetching
        if fetching is not None:
            raise ModelUnavailable(f"{self.label}: {fetching.detail()}")
        if self.loaded is None:
            raise ModelUnavailable(f"{self.label} {self.missing}: {self.unavailable}")
        return self.loaded.model

    def reporter(self, task_id: str | None) -> ProgressReporter:
        return ProgressReporter(self.store, task_id)

    async def describe(self) -> dict:
        self._require()
        return {"weights": self.weights_kind, **self._facts()}

    async def info(self, model: str | None = None) -> dict:
        """Health: ready, downloading (with the progress), or unavailable with the reason. ``model``:
        the registry key asked about, for services that serve several (see ``PipelineService.model_parts``)."""
        fetching = self.fetching
        if fetching is not None:
            return fetching.info()
        if self.loaded is None:
            return {"status": "unavailable", "running": True, "weights": None,
                    "detail": f"{self.missing.removeprefix('has ')}: {self.unavailable}"}
        return {"status": "ready", "running": True, "weights": self.loaded.weights_kind, "detail": self.loaded.note}

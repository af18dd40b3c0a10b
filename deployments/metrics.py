"""Prometheus metrics of the model replicas, through Ray's metrics API (``ray.util.metrics``), and
the small machinery the ingress's own metrics (``serve_app.metrics``) share.

Every metric is declared once, here or there, as data: name (``amphion_`` prefix), tags, buckets.
Ray exports them on each node's metrics port (and so on its dashboard and to Prometheus) with a
``ray_`` prefix, counters with a ``_total`` suffix, one series per worker process (Ray's
``WorkerId`` label): queries sum over it. Tags are low-cardinality by design: deployment, method,
stage, route template, status code. Never a task id, a key or a path.

Ray (2.60, OpenTelemetry export) reports a histogram's ``_sum`` from its bucket midpoints, not the
values observed: quantiles and means from histograms are estimates. What must add up exactly
(upload bytes, audio and compute seconds) is also a counter; batch sizes get one bucket per size up
to 8 (centred on the integer), so their mean is exact there.

Outside Ray (unit tests, the plain-FastAPI app, scripts) recording does nothing, at the cost of a
flag check, unless a test captures the samples (:func:`capture`).

What the replicas record, and where:

* requests: every public coroutine method of a :class:`~deployments.base.ModelService` that a
  caller invokes (:func:`meter_requests`, applied to each service class): count by outcome,
  duration, requests under way (queue depth, including those waiting for a batch), and for answers
  that carry audio its seconds, the compute seconds and their ratio, the real-time factor
  (``duration`` / ``compute_s``);
* stages: a part's stage (``PartService.run`` / ``generate``) and a batched model's batch
  (:func:`stage`), with the batch size;
* steps: every progress step a model reports (:func:`count_step`, from ``ProgressReporter``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, NamedTuple

from deployments.errors import InvalidModelInput, ModelUnavailable

log = logging.getLogger("amphion.metrics")

PREFIX = "amphion_"
#: What Ray puts in front of every metric name it exports.
RAY_EXPORT_PREFIX = "ray_"

# Buckets, shared by every histogram of a kind.
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
BYTES_BUCKETS = tuple(float(kib * 1024) for kib in (1, 16, 128, 1024, 4096, 16384, 65536, 131072, 262144))
RTF_BUCKETS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
# One bucket per batch size up to 8 (midpoints on the integers), coarser above.
BATCH_BUCKETS = tuple(n + 0.5 for n in (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 48, 64))

#: The ``deployment`` tag outside a Serve replica.
LOCAL = "local"


# ---------------------------------------------------------------------------------------------
# the machinery


class Sample(NamedTuple):
    """One recorded value, as :func:`capture` keeps it."""

    name: str
    value: float
    tags: dict


class Captured(list):
    """The samples recorded while :func:`capture` is active."""

    def of(self, name: str, **tags) -> list[float]:
        """Values recorded for ``name`` whose tags include ``tags``."""
        return [s.value for s in self if s.name == name and tags.items() <= s.tags.items()]


_captured: Captured | None = None
#: Every metric declared (here and in ``serve_app.metrics``), for the dashboard's test and docs.
DECLARED: list["Metric"] = []


@contextmanager
def capture() -> Iterator[Captured]:
    """Keep the samples recorded inside the block (instead of sending them to Ray): for tests."""
    global _captured
    previous, _captured = _captured, Captured()
    try:
        yield _captured
    finally:
        _captured = previous


def recording() -> bool:
    """Whether a sample would go anywhere: a capture is active or this process is part of Ray."""
    if _captured is not None:
        return True
    ray = sys.modules.get("ray")   # not imported: cannot be initialised, and no import just to ask
    return ray is not None and ray.is_initialized()


class Metric:
    """A metric declared once; its Ray object is made on first use inside Ray."""

    kind = ""
    #: Prometheus series names Ray exports for one metric of this kind (suffixes of the name).
    series_suffixes: tuple[str, ...] = ("",)

    def __init__(self, name: str, description: str, tags: tuple[str, ...], buckets: tuple[float, ...] = ()):
        if not name.startswith(PREFIX):
            raise ValueError(f"metric {name!r} must start with {PREFIX!r}")
        self.name = name
        self.description = description
        self.tags = tuple(tags)
        self.buckets = tuple(buckets)
        self._ray = None
        self._lock = threading.Lock()
        DECLARED.append(self)

    @property
    def exported(self) -> tuple[str, ...]:
        """The names of the series Prometheus sees."""
        return tuple(f"{RAY_EXPORT_PREFIX}{self.name}{suffix}" for suffix in self.series_suffixes)

    def _make(self):
        raise NotImplementedError

    def _write(self, metric, value: float, tags: dict) -> None:
        raise NotImplementedError

    def _record(self, value: float, tags: dict) -> None:
        if set(tags) != set(self.tags):
            raise ValueError(f"{self.name} takes tags {self.tags}, got {tuple(tags)}")
        tags = {k: str(v) for k, v in tags.items()}
        if _captured is not None:
            _captured.append(Sample(self.name, float(value), tags))
            return
        if not recording():
            return
        try:
            if self._ray is None:
                with self._lock:
                    if self._ray is None:
                        self._ray = self._make()
            self._write(self._ray, float(value), tags)
        except Exception:   # a metric must never fail a request
            log.exception("recording %s failed", self.name)


class Counter(Metric):
    kind = "counter"
    series_suffixes = ("_total",)

    def _make(self):
        from ray.util.metrics import Counter as RayCounter

        return RayCounter(self.name, self.description, tag_keys=self.tags)

    def _write(self, metric, value: float, tags: dict) -> None:
        metric.inc(value, tags=tags)

    def inc(self, value: float = 1.0, **tags) -> None:
        if value > 0:
            self._record(value, tags)


class Gauge(Metric):
    kind = "gauge"

    def _make(self):
        from ray.util.metrics import Gauge as RayGauge

        return RayGauge(self.name, self.description, tag_keys=self.tags)

    def _write(self, metric, value: float, tags: dict) -> None:
        metric.set(value, tags=tags)

    def set(self, value: float, **tags) -> None:
        self._record(value, tags)


class Histogram(Metric):
    kind = "histogram"
    series_suffixes = ("_bucket", "_sum", "_count")

    def __init__(self, name: str, description: str, tags: tuple[str, ...], buckets: tuple[float, ...]):
        super().__init__(name, description, tags, buckets)

    def _make(self):
        from ray.util.metrics import Histogram as RayHistogram

        return RayHistogram(self.name, self.description, boundaries=list(self.buckets), tag_keys=self.tags)

    def _write(self, metric, value: float, tags: dict) -> None:
        metric.observe(value, tags=tags)

    def observe(self, value: float, **tags) -> None:
        self._record(value, tags)


class InFlight:
    """A gauge of things under way in this process, per tag set: ``with in_flight(**tags): ...``."""

    def __init__(self, gauge: Gauge):
        self.gauge = gauge
        self._counts: dict[tuple, int] = {}
        self._lock = threading.Lock()

    def _move(self, tags: dict, by: int) -> None:
        key = tuple(sorted(tags.items()))
        with self._lock:
            count = self._counts[key] = self._counts.get(key, 0) + by
        self.gauge.set(count, **tags)

    @contextmanager
    def __call__(self, **tags):
        if not recording():
            yield
            return
        self._move(tags, +1)
        try:
            yield
        finally:
            self._move(tags, -1)


def exported_names() -> frozenset[str]:
    """Every series name Prometheus sees from our metrics (the ingress's once it is imported)."""
    return frozenset(name for metric in DECLARED for name in metric.exported)


# ---------------------------------------------------------------------------------------------
# what the model replicas record

REQUESTS = Counter("amphion_deployment_requests", "Requests a model deployment answered, by outcome "
                   "(ok, invalid_input, unavailable, error, cancelled)", ("deployment", "method", "outcome"))
REQUEST_SECONDS = Histogram("amphion_deployment_request_duration_seconds", "Time a model deployment took "
                            "to answer a request, queueing for a batch included", ("deployment", "method"),
                            SECONDS_BUCKETS)
ONGOING = Gauge("amphion_deployment_ongoing_requests", "Requests inside a model replica: running, or "
                "waiting for a batch or for the parts they call (queue depth)", ("deployment",))
STAGE_SECONDS = Histogram("amphion_stage_duration_seconds", "Duration of a pipeline stage (a part's stage, "
                          "or a batched model's batch)", ("deployment", "stage"), SECONDS_BUCKETS)
STEPS = Counter("amphion_generation_steps", "Generation steps done (decoding, diffusion or flow steps), by "
                "the progress stage that reports them: rate() is steps per second", ("deployment", "stage"))
REALTIME_FACTOR = Histogram("amphion_realtime_factor", "Seconds of audio produced per second of compute "
                            "(above 1: faster than real time), per request", ("deployment", "method"), RTF_BUCKETS)
AUDIO_SECONDS = Counter("amphion_audio_seconds", "Seconds of audio produced", ("deployment", "method"))
COMPUTE_SECONDS = Counter("amphion_compute_seconds", "Compute seconds spent producing audio (the answers' "
                          "compute_s): rate(audio) / rate(compute) is the real-time factor", ("deployment", "method"))
BATCH_SIZE = Histogram("amphion_batch_size", "Requests per batch of a batched model (@serve.batch)",
                       ("deployment", "stage"), BATCH_BUCKETS)

_ongoing = InFlight(ONGOING)
#: Methods that are not requests: health and static facts, which the ingress and entries ask often.
NOT_REQUESTS = frozenset({"info", "describe"})
#: Exceptions -> the ``outcome`` tag (first match); anything else is ``error``.
OUTCOMES = ((InvalidModelInput, "invalid_input"), (ModelUnavailable, "unavailable"))

# Set while a service method runs: a method it calls (``render``, a part in the same process, a
# parent class's version) is part of the same request, not another one.
_in_request: contextvars.ContextVar[bool] = contextvars.ContextVar("amphion_in_request", default=False)
_deployment: str | None = None


def deployment_name() -> str:
    """The Serve deployment this process is a replica of (``local`` outside Serve)."""
    global _deployment
    if _deployment is None:
        try:
            from ray import serve

            _deployment = serve.get_replica_context().deployment
        except Exception:
            return LOCAL
    return _deployment


def _outcome(exc: BaseException) -> str:
    return next((name for kind, name in OUTCOMES if isinstance(exc, kind)), "error")


def _observe_realtime_factor(result, deployment: str, method: str) -> None:
    if isinstance(result, dict):
        audio_s, compute_s = result.get("duration"), result.get("compute_s")
        if isinstance(audio_s, (int, float)) and isinstance(compute_s, (int, float)) and compute_s > 0 and audio_s > 0:
            REALTIME_FACTOR.observe(audio_s / compute_s, deployment=deployment, method=method)
            AUDIO_SECONDS.inc(audio_s, deployment=deployment, method=method)
            COMPUTE_SECONDS.inc(compute_s, deployment=deployment, method=method)


def metered(method: str, fn):
    """``fn`` (a service's coroutine method) recorded as a request when it is the outermost call.
    The outermost call of a request is also where the replica drains its progress events
    (``deployments.progress.drain``) before answering, so they reach the shared state first."""
    recorded = method not in NOT_REQUESTS

    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        if _in_request.get() or not recording():
            return await fn(*args, **kwargs)
        token = _in_request.set(True)
        try:
            if not recorded:
                return await fn(*args, **kwargs)
            try:
                return await _recorded(fn, method, args, kwargs)
            finally:
                if not _cancelling():
                    from deployments.progress import drain   # progress imports this module

                    await drain()
        finally:
            _in_request.reset(token)

    wrapper.__amphion_metered__ = True
    return wrapper


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _recorded(fn, method: str, args, kwargs):
    """Run one request of ``fn``, recording its count, duration, in-flight gauge and audio figures."""
    deployment = deployment_name()
    started = time.perf_counter()
    outcome = "error"
    try:
        with _ongoing(deployment=deployment):
            result = await fn(*args, **kwargs)
        outcome = "ok"
        _observe_realtime_factor(result, deployment, method)
        return result
    except asyncio.CancelledError:   # the caller gave up (client gone, replica stopping)
        outcome = "cancelled"
        raise
    except Exception as exc:
        outcome = _outcome(exc)
        raise
    finally:
        REQUESTS.inc(deployment=deployment, method=method, outcome=outcome)
        REQUEST_SECONDS.observe(time.perf_counter() - started, deployment=deployment, method=method)


def meter_requests(cls: type) -> None:
    """Record the requests of ``cls``'s own public coroutine methods (a service class, from
    ``ModelService.__init_subclass__``); inherited ones were wrapped by the class defining them."""
    for name, fn in list(vars(cls).items()):
        if name.startswith("_") or not inspect.iscoroutinefunction(fn) or getattr(fn, "__amphion_metered__", False):
            continue
        setattr(cls, name, metered(name, fn))


@contextmanager
def stage(name: str, batch_size: int | None = None):
    """Time a stage of a request (or of a batch of ``batch_size`` requests); recorded when it
    finishes without an error (a refused input says nothing about how long the stage takes)."""
    started = time.perf_counter()
    yield
    record_stage(name, time.perf_counter() - started, batch_size)


def record_stage(name: str, seconds: float, batch_size: int | None = None) -> None:
    """A stage that took ``seconds`` (for a batch of ``batch_size`` requests, when batched)."""
    if recording():
        deployment = deployment_name()
        STAGE_SECONDS.observe(seconds, deployment=deployment, stage=name)
        if batch_size:
            BATCH_SIZE.observe(batch_size, deployment=deployment, stage=name)


def count_step(stage_name: str, step: int) -> None:
    """A progress step a model reported (``step`` 0 announces a stage; it is not a step done)."""
    if step >= 1 and recording():
        STEPS.inc(deployment=deployment_name(), stage=stage_name)

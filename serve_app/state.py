"""State shared by every ingress replica and every model deployment: rate-limit counts and task progress.

`StateCore` holds it and runs inside one place: a named Ray actor in production (so all ingress
replicas count against the same limits and a progress socket on one replica sees a task served by
another), or the current process for the plain-FastAPI app used in tests and benchmarks. Callers
use the `StateStore` interface and never know which.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from deployments.progress import STATE_ACTOR_NAME, STATE_NAMESPACE
from serve_app.ratelimit import SlidingWindowLimiter

log = logging.getLogger("amphion.state")

TERMINAL = ("completed", "failed")


@dataclass
class _Task:
    events: list[dict] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    touched: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> bool:
        return bool(self.events) and self.events[-1]["status"] in TERMINAL


class StateCore:
    """Owns the counters and task event logs. Single event loop, so no locks are needed."""

    def __init__(self, per_minute: int = 10, per_hour: int = 100, task_ttl_s: float = 600.0):
        self.limiter = SlidingWindowLimiter(per_minute, per_hour)
        self.task_ttl_s = task_ttl_s
        self._tasks: dict[str, _Task] = {}
        self._published = 0

    def configure(self, per_minute: int, per_hour: int, task_ttl_s: float) -> None:
        """Later replicas (or a redeploy with new limits) update the numbers, keeping the counts."""
        self.limiter.per_minute = per_minute
        self.limiter.per_hour = per_hour
        self.task_ttl_s = task_ttl_s

    def rate_hit(self, key_id: str, endpoint: str) -> dict:
        return self.limiter.hit(key_id, endpoint, time.monotonic()).as_dict()

    def publish(self, event: dict) -> None:
        task = self._tasks.setdefault(event["task_id"], _Task())
        if task.finished:
            return  # a late event from a slower process must not reopen a finished task
        task.events.append(event)
        task.touched = time.monotonic()
        task.changed.set()
        task.changed = asyncio.Event()
        self._published += 1
        if self._published % 256 == 0:
            self.expire()

    def publish_many(self, events: list[dict]) -> None:
        """Several events in order (a replica's batch, see ``deployments.progress.ActorPublisher``)."""
        for event in events:
            self.publish(event)

    async def wait_events(self, task_id: str, after: int, timeout: float) -> tuple[list[dict], int]:
        """Events with index >= `after`, waiting up to `timeout` s for some; returns (events, next index).

        A caller arriving after the task ended (after == 0) gets only the final event.
        """
        task = self._tasks.setdefault(task_id, _Task())
        if after > len(task.events):
            # An index past the log: this actor replaced a lost one and the log restarted; the
            # caller gets what it has from the start (a final event included) rather than waiting.
            after = 0
        if after == 0 and task.finished:
            return [task.events[-1]], len(task.events)
        if len(task.events) <= after:
            try:
                await asyncio.wait_for(task.changed.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            task = self._tasks.get(task_id, task)
        return task.events[after:], len(task.events)

    def expire(self) -> None:
        cutoff = time.monotonic() - self.task_ttl_s
        for task_id in [t for t, task in self._tasks.items() if task.touched < cutoff]:
            del self._tasks[task_id]


class StateStore(Protocol):
    async def rate_hit(self, key_id: str, endpoint: str) -> dict: ...
    def publish(self, event: dict) -> None: ...
    async def wait_events(self, task_id: str, after: int, timeout: float) -> tuple[list[dict], int]: ...


class LocalStateStore:
    """The state in this process: for the plain-FastAPI app, unit tests and benchmarks."""

    def __init__(self, core: StateCore | None = None):
        self.core = core or StateCore()

    async def rate_hit(self, key_id: str, endpoint: str) -> dict:
        return self.core.rate_hit(key_id, endpoint)

    def publish(self, event: dict) -> None:
        self.core.publish(event)

    async def wait_events(self, task_id: str, after: int, timeout: float):
        return await self.core.wait_events(task_id, after, timeout)


def _actor_class():
    import ray

    # max_concurrency: progress sockets park in wait_events, so many calls must be in flight at once.
    return ray.remote(num_cpus=0, max_concurrency=10_000)(StateCore)


class RayStateStore:
    """The state in a named, detached Ray actor shared by the whole application.

    If the actor dies (its node went away), the next call makes a new one under the same name:
    counts and task events restart from empty, and the application keeps serving.
    """

    def __init__(self, limits: tuple[int, int, float] | None = None):
        """`limits` = (per_minute, per_hour, task_ttl_s). Model replicas do not use this class:
        they publish through ``deployments.progress.ActorPublisher``."""
        from deployments.progress import ActorPublisher

        self.limits = limits
        self.actor = self._connect()
        self._publisher = ActorPublisher(connect=self._connect)
        self._publisher.actor = self.actor

    def _connect(self):
        actor = _actor_class().options(
            name=STATE_ACTOR_NAME,
            namespace=STATE_NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
        ).remote(*(self.limits or ()))
        if self.limits is not None:
            actor.configure.remote(*self.limits)
        return actor

    async def _call(self, method: str, *args):
        from ray.exceptions import RayActorError

        try:
            return await getattr(self.actor, method).remote(*args)
        except RayActorError:
            log.warning("shared state actor was lost; starting a new one")
            self.actor = self._connect()
            return await getattr(self.actor, method).remote(*args)

    async def rate_hit(self, key_id: str, endpoint: str) -> dict:
        return await self._call("rate_hit", key_id, endpoint)

    def publish(self, event: dict) -> None:
        # Fire and forget: calls from one process reach the actor in submission order, and a
        # progress event must never add latency to inference. An event that finds the actor lost
        # is re-sent to its replacement (made here if no one has yet), in order.
        self._publisher.publish(event)

    async def wait_events(self, task_id: str, after: int, timeout: float):
        return await self._call("wait_events", task_id, after, timeout)


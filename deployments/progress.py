"""Progress events of a request, as model replicas publish them.

Events go to the shared state actor (a named Ray actor that the ingress creates and owns, see
``serve_app.state``), so a progress socket on any ingress replica sees a task served anywhere.
A replica only publishes, in batches (:class:`ActorPublisher`): it finds the actor by name, never
creates it, and looks it up again when a publish finds it gone.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref

from deployments import metrics

log = logging.getLogger("amphion.progress")

STATE_ACTOR_NAME = "amphion_shared_state"
STATE_NAMESPACE = "amphion_serve"


class ProgressReporter:
    """Publishes one task's events. Cheap to make; safe to call from worker threads (publish is
    fire-and-forget and never blocks). ``store`` is anything with ``publish(event)``, or None."""

    def __init__(self, store, task_id: str | None):
        self.store = store
        self.task_id = task_id

    def _emit(self, status: str, stage: str, step: int, total: int, detail: str = "") -> None:
        if self.store is None or not self.task_id:
            return
        progress = 1.0 if status == "completed" else (step / total if total else 0.0)
        self.store.publish({
            "task_id": self.task_id,
            "status": status,
            "stage": stage,
            "step": step,
            "total_steps": total,
            "progress": round(min(max(progress, 0.0), 1.0), 4),
            "detail": detail,
            "timestamp": time.time(),
        })

    def queued(self, detail: str = "accepted") -> None:
        self._emit("queued", "queued", 0, 0, detail)

    def step(self, stage: str, step: int, total: int, detail: str = "") -> None:
        metrics.count_step(stage, step)
        self._emit("running", stage, step, total, detail)

    def flush(self) -> None:
        """Wait until this task's events so far are on their way (see :meth:`ActorPublisher.flush`);
        blocking: call it from a worker thread."""
        flush = getattr(self.store, "flush", None)
        if flush is not None and self.task_id:
            flush()

    def emitter(self):
        """``emit(stage, step, total)`` for the models' progress callbacks."""
        return lambda stage, step, total: self.step(stage, step, total)

    def completed(self, detail: str = "done") -> None:
        self._emit("completed", "done", 1, 1, detail)

    def failed(self, detail: str) -> None:
        self._emit("failed", "failed", 0, 0, detail)


#: Statuses sent at once; "running" steps wait up to ``batch_window_s`` to travel with the next ones.
URGENT_STATUSES = frozenset({"queued", "completed", "failed"})
#: Every publisher of this process, for :func:`drain` and :func:`send_now`.
_publishers: "weakref.WeakSet[ActorPublisher]" = weakref.WeakSet()


class ActorPublisher:
    """Progress events to the shared state actor, batched, in order, never blocking the caller.

    ``publish`` queues the event and returns. One sender thread per publisher sends what has queued
    as one ``publish_many`` call and waits for the actor to confirm it: a fast model reports dozens
    of steps a second, and one actor call per step cost more CPU than the steps on a small machine.
    Sends are at least ``batch_window_s`` apart: an event that finds the last send older than that
    goes at once (so a lone event adds no delay), the steps that follow it travel together when the
    window is over; other statuses (queued, completed, failed) and :meth:`send_now` cut it short.
    :meth:`flush` waits until everything published before it has been sent: a replica calls it
    (through :func:`drain`) before it answers, so the request's steps leave for the actor before
    its answer leaves for the ingress, whose final event follows (the order publishing one call per
    event gave, without waiting for the actor's confirmation).

    The actor is found by name (or, with ``connect``, made by the caller's function: the ingress
    creates it when it is missing). A batch that fails because the actor died stays queued, and the
    sender looks the actor up again and re-sends, oldest first; events published meanwhile queue
    behind it. Events still without an actor after ``retry_for_s`` are dropped with a warning:
    progress must never hold up inference.
    """

    def __init__(self, connect=None, retry_for_s: float = 30.0, batch_window_s: float = 0.05):
        self.actor = None
        self._connect = connect
        self.retry_for_s = retry_for_s
        self.batch_window_s = batch_window_s
        self._cond = threading.Condition()
        self._pending: list[dict] = []   # events not yet confirmed, in publish order
        self._published = 0              # events ever published
        self._sent = 0                   # events handed to Ray at least once, or dropped
        self._settled = 0                # events delivered or dropped (a prefix of the published ones)
        self._hurry = False              # send without waiting out the batch window
        self._last_send = float("-inf")  # monotonic time of the last send
        self._sender: threading.Thread | None = None
        _publishers.add(self)

    # -- callers ------------------------------------------------------------------------------------
    def publish(self, event: dict) -> None:
        with self._cond:
            first = not self._pending
            self._pending.append(event)
            self._published += 1
            urgent = event.get("status") in URGENT_STATUSES
            if urgent:
                self._hurry = True
            if self._sender is None:
                self._sender = threading.Thread(target=self._run, name="progress-sender", daemon=True)
                self._sender.start()
            if first or urgent:   # a step joining a batch leaves the sender asleep until its window ends
                self._cond.notify_all()

    @property
    def idle(self) -> bool:
        """Nothing is waiting to be sent (what :func:`drain` waits for)."""
        return self._sent >= self._published

    def send_now(self) -> None:
        """Send what is queued without waiting out the batch window (does not wait for it)."""
        with self._cond:
            if self._pending:
                self._hurry = True
                self._cond.notify_all()

    def flush(self, timeout: float = 5.0, confirmed: bool = False) -> bool:
        """Wait until every event published so far is sent (``confirmed``: delivered), or dropped;
        False on timeout."""
        with self._cond:
            target = self._published
            done = (lambda: self._settled >= target) if confirmed else (lambda: self._sent >= target)
            if done():
                return True
            self._hurry = True
            self._cond.notify_all()
            return self._cond.wait_for(done, timeout)

    # -- the sender thread --------------------------------------------------------------------------
    def _lookup(self):
        import ray

        if self._connect is not None:
            return self._connect()
        try:
            return ray.get_actor(STATE_ACTOR_NAME, namespace=STATE_NAMESPACE)
        except ValueError:
            return None

    @staticmethod
    def _send(actor, events: list[dict], sent) -> None:
        """Deliver ``events`` in order, calling ``sent()`` once they are on their way, and wait until
        the actor has them (raises if it died)."""
        import ray

        ref = actor.publish_many.remote(events)
        sent()
        ray.get(ref, timeout=10)

    def _mark_sent(self, upto: int) -> None:
        with self._cond:
            self._sent = max(self._sent, upto)
            self._cond.notify_all()

    def _next_batch(self) -> list[dict]:
        """Block until there is something to send and its batch window is over (or cut short)."""
        with self._cond:
            self._cond.wait_for(lambda: self._pending)
            deadline = self._last_send + self.batch_window_s
            while not self._hurry:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._hurry = False
            self._last_send = time.monotonic()
            return list(self._pending)

    def _settle(self, count: int) -> None:
        with self._cond:
            del self._pending[:count]
            self._settled += count
            self._sent = max(self._sent, self._settled)
            self._cond.notify_all()

    def _run(self) -> None:
        failing_since = None
        delay = 0.05
        while True:
            batch = self._next_batch()
            try:
                actor = self.actor or self._lookup()
                if actor is not None:
                    upto = self._settled + len(batch)
                    self._send(actor, batch, lambda: self._mark_sent(upto))
                    self.actor = actor
                    self._settle(len(batch))
                    failing_since, delay = None, 0.05
                    continue
            except Exception as exc:   # the actor died (or timed out): look it up again
                if not _actor_lost(exc):
                    log.exception("publishing progress events failed")
                self.actor = None
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since > self.retry_for_s:
                with self._cond:
                    dropped = len(self._pending)
                self._settle(dropped)
                log.warning("no shared state actor for %.0f s; %d progress events dropped", self.retry_for_s, dropped)
                failing_since = None
                continue
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            with self._cond:
                self._hurry = True   # re-send as soon as the actor may be back


def _actor_lost(exc: Exception) -> bool:
    """A failure that means "look the actor up again", not a bug."""
    try:
        from ray.exceptions import GetTimeoutError, RayActorError
    except ImportError:   # pragma: no cover - Ray is a dependency
        return False
    return isinstance(exc, (RayActorError, GetTimeoutError))


def send_now() -> None:
    """Send this process's queued progress events without waiting out their batch window: an entry
    calls it before handing a request to a part, so its events stay ahead of the part's."""
    for publisher in list(_publishers):
        publisher.send_now()


async def drain(timeout: float = 5.0) -> None:
    """Wait (in a worker thread) until this process's progress events are delivered: a replica
    calls it before answering a request. Costs nothing when none are waiting."""
    import asyncio

    busy = [p for p in list(_publishers) if not p.idle]
    if busy:
        await asyncio.to_thread(lambda: [p.flush(timeout) for p in busy])


def progress_store():
    """Where this replica publishes progress: the shared actor inside Ray, None (no events) elsewhere."""
    try:
        import ray

        if ray.is_initialized():
            return ActorPublisher()
    except Exception:
        log.exception("progress store unavailable; this replica will not report progress")
    return None

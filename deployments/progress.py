"""Progress events of a request, as model replicas publish them.

Events go to the shared state actor (a named Ray actor that the ingress creates and owns, see
``serve_app.state``), so a progress socket on any ingress replica sees a task served anywhere.
A replica only publishes: it finds the actor by name, never creates it, and looks it up again
when a publish finds it gone.
"""

from __future__ import annotations

import logging
import threading
import time

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

    def emitter(self):
        """``emit(stage, step, total)`` for the models' progress callbacks."""
        return lambda stage, step, total: self.step(stage, step, total)

    def completed(self, detail: str = "done") -> None:
        self._emit("completed", "done", 1, 1, detail)

    def failed(self, detail: str) -> None:
        self._emit("failed", "failed", 0, 0, detail)


class ActorPublisher:
    """Fire-and-forget ``publish`` to the shared state actor, found by name (or, with ``connect``,
    made by the caller's function: the ingress creates the actor when it is missing).

    A publish that fails because the actor died is not lost: the event goes back into a queue, and
    a worker thread (never Ray's own callback thread) looks the actor up again and sends the queued
    events, oldest first, confirming each batch; events published meanwhile join the queue, so order
    is kept. The ingress replaces a lost actor on its next call; events still without an actor after
    ``retry_for_s`` are dropped with a warning: progress must never hold up inference.
    """

    def __init__(self, connect=None, retry_for_s: float = 30.0):
        self.actor = None
        self._connect = connect
        self.retry_for_s = retry_for_s
        self._lock = threading.Lock()
        self._pending: list[dict] = []   # events waiting for an actor, in publish order
        self._retrying = False

    def _lookup(self):
        import ray

        if self._connect is not None:
            return self._connect()
        try:
            return ray.get_actor(STATE_ACTOR_NAME, namespace=STATE_NAMESPACE)
        except ValueError:
            return None

    def publish(self, event: dict) -> None:
        with self._lock:
            if self._retrying:   # an earlier event is being re-sent: keep the order
                self._pending.append(event)
                return
            actor = self.actor
        if actor is None:
            try:
                actor = self._lookup()
            except Exception:
                log.exception("shared state actor lookup failed")
                actor = None
            if actor is None:
                self._requeue(event)
                return
            self.actor = actor
        actor.publish.remote(event).future().add_done_callback(
            lambda future, event=event, actor=actor: self._check_published(future, event, actor))

    def _check_published(self, future, event: dict, actor) -> None:
        # Runs on one of Ray's own threads: no Ray calls here (they could deadlock); the event goes
        # back into the queue and the worker thread makes the calls.
        from ray.exceptions import RayActorError

        if isinstance(future.exception(), RayActorError):
            with self._lock:
                if self.actor is actor:
                    self.actor = None
            self._requeue(event)

    def _requeue(self, event: dict) -> None:
        with self._lock:
            self._pending.append(event)
            if self._retrying:
                return
            self._retrying = True
        threading.Thread(target=self._resend, name="progress-resend", daemon=True).start()

    @staticmethod
    def _send_confirmed(actor, events: list[dict]) -> None:
        """Publish ``events`` in order and wait until the actor has them (raises if it died)."""
        import ray

        ray.get([actor.publish.remote(e) for e in events], timeout=10)

    def _resend(self) -> None:
        import ray
        from ray.exceptions import RayActorError

        deadline = time.monotonic() + self.retry_for_s
        delay = 0.05
        while True:
            with self._lock:
                batch = sorted(self._pending, key=lambda e: e.get("timestamp", 0.0))
                if not batch:
                    self._retrying = False   # publish() sends directly again
                    return
            try:
                actor = self.actor or self._lookup()
                if actor is not None:
                    self._send_confirmed(actor, batch)
                    self.actor = actor
                    with self._lock:
                        self._pending = self._pending[len(batch):]
                    delay = 0.05
                    continue
            except (RayActorError, ray.exceptions.GetTimeoutError):
                self.actor = None
            except Exception:
                log.exception("re-sending progress events failed")
                self.actor = None
            if time.monotonic() > deadline:
                with self._lock:
                    dropped, self._pending, self._retrying = self._pending, [], False
                log.warning("no shared state actor for %.0f s; %d progress events dropped",
                            self.retry_for_s, len(dropped))
                return
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def progress_store():
    """Where this replica publishes progress: the shared actor inside Ray, None (no events) elsewhere."""
    try:
        import ray

        if ray.is_initialized():
            return ActorPublisher()
    except Exception:
        log.exception("progress store unavailable; this replica will not report progress")
    return None

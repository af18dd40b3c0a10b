"""Progress events of a request, as model replicas publish them.

Events go to the shared state actor (a named Ray actor that the ingress creates and owns, see
``serve_app.state``), so a progress socket on any ingress replica sees a task served anywhere.
A replica only publishes: it finds the actor by name, never creates it, and looks it up again
when a publish finds it gone.
"""

from __future__ import annotations

import logging
import time

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
        self._emit("running", stage, step, total, detail)

    def emitter(self):
        """``emit(stage, step, total)`` for the models' progress callbacks."""
        return lambda stage, step, total: self.step(stage, step, total)

    def completed(self, detail: str = "done") -> None:
        self._emit("completed", "done", 1, 1, detail)

    def failed(self, detail: str) -> None:
        self._emit("failed", "failed", 0, 0, detail)


class ActorPublisher:
    """Fire-and-forget ``publish`` to the shared state actor, found by name.

    A publish that fails because the actor died marks it lost; the next publish looks it up again
    (the ingress replaces a lost actor on its next call). Events published while no actor can be
    found are dropped with a warning: progress must never hold up inference.
    """

    def __init__(self):
        self.actor = None
        self._lost = True

    def _lookup(self):
        import ray

        try:
            self.actor = ray.get_actor(STATE_ACTOR_NAME, namespace=STATE_NAMESPACE)
            self._lost = False
        except ValueError:
            self.actor = None
        return self.actor

    def publish(self, event: dict) -> None:
        actor = self._lookup() if self._lost or self.actor is None else self.actor
        if actor is None:
            log.warning("no shared state actor; progress event for %s dropped", event.get("task_id"))
            return
        actor.publish.remote(event).future().add_done_callback(self._check_published)

    def _check_published(self, future) -> None:
        # Runs on one of Ray's own threads: no Ray calls here (they could deadlock), only a flag.
        from ray.exceptions import RayActorError

        if isinstance(future.exception(), RayActorError):
            self._lost = True


def progress_store():
    """Where this replica publishes progress: the shared actor inside Ray, None (no events) elsewhere."""
    try:
        import ray

        if ray.is_initialized():
            return ActorPublisher()
    except Exception:
        log.exception("progress store unavailable; this replica will not report progress")
    return None

"""Task ids and progress events.

Every model request has a task id (the client's `X-Task-ID`, or one we make). Events go through
the shared `StateStore`, so `/ws/progress/{task_id}` on any ingress replica sees them.
"""

from __future__ import annotations

import re
import time
import uuid

TASK_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
TASK_ID_RULE = "8 to 64 characters of A-Z, a-z, 0-9, '_' and '-'"


def valid_task_id(task_id: str) -> bool:
    return bool(TASK_ID_PATTERN.match(task_id))


def new_task_id() -> str:
    return uuid.uuid4().hex


class ProgressReporter:
    """Publishes one task's events. Cheap to make; safe to call from worker threads (publish is
    fire-and-forget and never blocks)."""

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

    def completed(self, detail: str = "done") -> None:
        self._emit("completed", "done", 1, 1, detail)

    def failed(self, detail: str) -> None:
        self._emit("failed", "failed", 0, 0, detail)

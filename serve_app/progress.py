"""Task ids. Every model request has one (the client's `X-Task-ID`, or one we make); its progress
events (``deployments.progress.ProgressReporter``) go through the shared `StateStore`, so
`/ws/progress/{task_id}` on any ingress replica sees them.
"""

from __future__ import annotations

import re
import uuid

TASK_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
TASK_ID_RULE = "8 to 64 characters of A-Z, a-z, 0-9, '_' and '-'"


def valid_task_id(task_id: str) -> bool:
    return bool(TASK_ID_PATTERN.match(task_id))


def new_task_id() -> str:
    return uuid.uuid4().hex

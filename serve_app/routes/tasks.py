"""Async jobs' status and results: ``GET /api/tasks/{task_id}`` and ``GET /api/tasks/{task_id}/result``.

Both read the shared task store (``serve_app.task_results``) and the shared progress events, so
they answer on every ingress replica, whichever one runs the job. A task belongs to the API key that
sent it: for any other key it does not exist (404, as for an unknown id). Polling them is not
counted against the rate limits (the gate's ``uncounted_routes``), so a client may poll every second.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from serve_app.async_jobs import TASKS_PATH, task_path
from serve_app.errors import APIError
from serve_app.routes.common import AUDIO_RESPONSES, ERROR_RESPONSES
from serve_app.state import TERMINAL
from serve_app.task_results import StoredResult, TaskRecord, TaskResults, results_for

log = logging.getLogger("amphion.tasks")

RESULT_PATH = TASKS_PATH + "/result"
PATHS = (TASKS_PATH, RESULT_PATH)
STREAM_CHUNK = 1024 * 1024
LOST_DETAIL = ("the server running this job stopped before it finished (it was restarted or scaled "
               "down); send the request again")

router = APIRouter(tags=["Tasks"])


class TaskStatus(BaseModel):
    """The progress event schema of ``/ws/progress/{task_id}``."""

    task_id: str
    status: Literal["queued", "running", "completed", "failed"]
    stage: str
    step: int
    total_steps: int
    progress: float = Field(ge=0, le=1)
    detail: str
    timestamp: float = Field(description="Unix time of the event")


_ERRORS = {
    404: "No such task for this API key (unknown id, another key's task); for /result also: still running",
    410: "The task's result expired (results are kept task_ttl_s after the job finished)",
}
TASK_ERRORS = {
    **{code: ERROR_RESPONSES[code] for code in (401, 500)},
    **{code: {**ERROR_RESPONSES[401], "description": text} for code, text in _ERRORS.items()},
}


async def _record(request: Request, task_id: str) -> tuple[TaskResults, TaskRecord]:
    """This key's task, or 404 (unknown, not a task id, another key's) or 410 (expired)."""
    store = results_for(request.app)
    record = await asyncio.to_thread(_read, store, task_id)
    if record is None or record.owner != request.scope.get("state", {}).get("key_id"):
        raise APIError(404, "no such task for this API key (tasks belong to the key that sent them)")
    if record.expired(store.clock()):
        raise APIError(410, f"the result of task {task_id} expired at {_iso(record.expires)} "
                            f"(results are kept {store.ttl_s:g} s after the job finished)")
    return store, record


def _read(store: TaskResults, task_id: str) -> TaskRecord | None:
    store.maybe_sweep()
    return store.read(task_id)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def _event(record: TaskRecord, status: str, stage: str, detail: str, timestamp: float) -> dict:
    finished = status == "completed"
    return {"task_id": record.task_id, "status": status, "stage": stage, "step": int(finished),
            "total_steps": int(finished), "progress": float(finished), "detail": detail, "timestamp": timestamp}


async def _latest_event(request: Request, record: TaskRecord) -> dict:
    """A running job's state: its newest progress event (from whichever replica runs it)."""
    try:
        events, _ = await request.app.state.store.wait_events(record.task_id, 0, 0.0)
    except Exception:
        log.exception("progress events of task %s unavailable", record.task_id)
        events = []
    if not events:
        return _event(record, "queued", "queued", "accepted; waiting to start", record.created)
    event = events[-1]
    if event["status"] in TERMINAL:
        # The model is done but the response is still being written: not finished until /result has it.
        return {**event, "status": "running", "stage": "saving", "detail": "storing the result"}
    return event


@router.get(TASKS_PATH, response_model=TaskStatus, responses=TASK_ERRORS,
            summary="An async job's status (the progress event schema)")
async def task_status(request: Request, task_id: str):
    """The task's newest progress event. `completed` or `failed` once its result is stored (then
    `GET /api/tasks/{task_id}/result` has it; a failed task's `detail` is the error's). A job whose
    server stopped before it finished is `failed`. Not counted against the rate limits."""
    store, record = await _record(request, task_id)
    if record.done:
        ok = record.status < 400
        return _event(record, "completed" if ok else "failed", "done" if ok else "failed",
                      "done; the result is ready" if ok else record.detail, record.finished)
    if record.lost(store.clock()):
        return _event(record, "failed", "failed", LOST_DETAIL, record.alive_until)
    return await _latest_event(request, record)


RESULT_RESPONSES = {
    200: {"description": "The job's response as the route gave it: the audio with its headers (X-Sample-Rate, "
                         "X-Audio-Duration, ...), the JSON, or the route's own error status and `{\"detail\"}`",
          "content": {**AUDIO_RESPONSES[200]["content"], "application/json": {"schema": {"type": "object"}}}},
    **TASK_ERRORS,
    503: {**ERROR_RESPONSES[503], "description": "The server running the job stopped before it finished"},
}


@router.get(RESULT_PATH, response_class=Response, responses=RESULT_RESPONSES, summary="An async job's result")
async def task_result(request: Request, task_id: str):
    """The stored response, byte for byte, with its status (a failed job's 4xx or 5xx and `{"detail"}`
    come back as they would have synchronously). 404 while the job runs. Not counted against the
    rate limits."""
    store, record = await _record(request, task_id)
    if not record.done:
        if record.lost(store.clock()):
            raise APIError(503, LOST_DETAIL)
        raise APIError(404, f"task {task_id} is still running; GET {task_path(task_id)} shows its progress")
    stored = await asyncio.to_thread(store.open_result, task_id)
    if stored is None:   # swept between the record's read and now
        raise APIError(410, f"the result of task {task_id} expired")
    headers = {name: value for name, value in stored.headers}
    headers["content-length"] = str(stored.length)
    return StreamingResponse(_chunks(stored), status_code=stored.status, headers=headers)


async def _chunks(stored: StoredResult):
    try:
        left = stored.length
        while left > 0:
            chunk = await asyncio.to_thread(stored.file.read, min(STREAM_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
    finally:
        stored.close()

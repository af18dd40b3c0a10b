"""Long jobs: a model request sent with ``Prefer: respond-async`` is answered 202 at once and runs
in the background on this replica; its response goes to the shared task store
(``serve_app.task_results``), where ``/api/tasks/{task_id}`` on any replica finds it.

This ASGI layer sits inside the Gatekeeper, so by the time it sees a request the key is checked,
the request counted against the rate limits and given a task id (``scope["state"]``), and the body
is bounded in size and time. It reads the whole body (spooled to a temporary file past
``MEMORY_BODY_BYTES``: uploads reach 100 MB), so a 413 or 408 still reaches the client directly;
then it claims the task id in the store, answers 202, and replays the body to the application in a
background task whose ``receive`` never reports a disconnect: the client has gone on purpose.

What the application answers (audio, JSON, or an error with its status) is stored whole. A job
that raises is stored as the 500 a synchronous request would have got. At most
``settings.max_async_jobs`` jobs run on a replica at once; past that a request is refused 503 with
``Retry-After`` before its body is read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile

from deployments.progress import ProgressReporter
from serve_app.backend import NO_DEADLINE
from serve_app.errors import internal_error_response
from serve_app.task_results import (
    ERROR_DETAIL_MAX, ResultWriter, TaskIdInUse, TaskResults, error_detail, results_for,
)

log = logging.getLogger("amphion.tasks")

PREFER_ASYNC = "respond-async"
# Only POSTs run as jobs: the GET routes under /api are quick look-ups (singers, events).
ASYNC_METHODS = frozenset({"POST"})
TASKS_PATH = "/api/tasks/{task_id}"
MEMORY_BODY_BYTES = 1024 * 1024     # bodies up to this stay in memory; larger ones go to a temp file
REPLAY_CHUNK = 64 * 1024
BUSY_RETRY_AFTER_S = 5
# Response headers that describe the transfer, not the content: never stored (the result route
# sets its own Content-Length).
HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})

# OpenAPI for the model routes that accept it (serve_app.app adds them to every such operation).
PREFER_PARAMETER = {
    "name": "Prefer", "in": "header", "required": False,
    "description": "`respond-async`: answer 202 at once with the task id, run the request in the background; "
                   "poll `GET /api/tasks/{task_id}` for its status and fetch `GET /api/tasks/{task_id}/result` "
                   "(kept task_ttl_s after it finished). Anything else: an ordinary, synchronous answer",
    "schema": {"type": "string", "enum": [PREFER_ASYNC]},
}
_ACCEPTED_SCHEMA = {
    "type": "object", "required": ["task_id", "status", "status_url", "result_url"],
    "properties": {"task_id": {"type": "string"}, "status": {"type": "string", "enum": ["queued"]},
                   "status_url": {"type": "string"}, "result_url": {"type": "string"}},
}
_DETAIL_SCHEMA = {"type": "object", "properties": {"detail": {"type": "string"}}}
ASYNC_OPENAPI_RESPONSES = {
    "202": {
        "description": "With `Prefer: respond-async`: accepted, running in the background",
        "content": {"application/json": {"schema": _ACCEPTED_SCHEMA}},
        "headers": {"Location": {"description": "The task's status: /api/tasks/{task_id}",
                                 "schema": {"type": "string"}},
                    "Preference-Applied": {"description": "`respond-async`", "schema": {"type": "string"}}},
    },
    "409": {"description": "With `Prefer: respond-async`: the X-Task-ID is held by an earlier job until it expires",
            "content": {"application/json": {"schema": _DETAIL_SCHEMA}}},
}


def wants_async(scope) -> bool:
    """A model request (one the gate gave a task id) whose client asked for an asynchronous answer
    (RFC 7240: ``Prefer`` holds comma-separated preferences, each maybe with ``;``/``=`` parameters)."""
    if scope["type"] != "http" or scope["method"] not in ASYNC_METHODS:
        return False
    if not scope.get("state", {}).get("task_id"):
        return False
    for name, value in scope["headers"]:
        if name.lower() == b"prefer":
            for preference in value.decode("latin-1").split(","):
                token = preference.split(";", 1)[0].split("=", 1)[0].strip().lower()
                if token == PREFER_ASYNC:
                    return True
    return False


def task_path(task_id: str) -> str:
    return TASKS_PATH.format(task_id=task_id)


class BodySpool:
    """A request body held for replay: in memory while small, then in an anonymous temporary file
    (written and read in a worker thread, so a large upload never blocks the event loop)."""

    def __init__(self, memory_bytes: int = MEMORY_BODY_BYTES):
        self.memory_bytes = memory_bytes
        self.buffer = bytearray()
        self.file = None
        self.size = 0

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.file is None and len(self.buffer) + len(chunk) <= self.memory_bytes:
            self.buffer += chunk
            return
        if self.file is None:
            self.file = await asyncio.to_thread(tempfile.TemporaryFile)
            chunk, self.buffer = bytes(self.buffer) + chunk, bytearray()
        await asyncio.to_thread(self.file.write, chunk)

    def receiver(self):
        """An ASGI ``receive`` that gives the body in chunks, then waits forever (no disconnect)."""
        offset = 0
        if self.file is not None:
            self.file.seek(0)

        async def receive():
            nonlocal offset
            if offset > self.size:
                await asyncio.Event().wait()   # the body was all given: nothing more will ever come
            if self.file is None:
                chunk = bytes(self.buffer[offset:offset + REPLAY_CHUNK])
            else:
                chunk = await asyncio.to_thread(self.file.read, REPLAY_CHUNK)
            offset += len(chunk)
            more = offset < self.size
            if not more:
                offset = self.size + 1
            return {"type": "http.request", "body": chunk, "more_body": more}

        return receive

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        self.buffer = bytearray()


async def read_body(receive, spool: BodySpool) -> bool:
    """Everything the client sends, into ``spool``; False when the client went away first. The gate's
    guarded ``receive`` raises for an oversized or too-slow body (it then answers 413 or 408)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        await spool.write(message.get("body", b""))
        if not message.get("more_body", False):
            return True


class ResponseCapture:
    """An ASGI ``send`` that writes the application's response into the task store instead of a
    socket (the file is made when the response starts), keeping the start of an error response's
    body in memory too, for the status detail."""

    def __init__(self, store: TaskResults, task_id: str):
        self.store = store
        self.task_id = task_id
        self.writer: ResultWriter | None = None
        self.status: int | None = None
        self.complete = False
        self.error_body = bytearray()

    async def send(self, message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])
                       if k.decode("latin-1").lower() not in HOP_HEADERS]
            headers.append(("x-task-id", self.task_id))
            self.writer = await asyncio.to_thread(self.store.writer, self.task_id)
            await asyncio.to_thread(self.writer.start, self.status, headers)
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            if body:
                await asyncio.to_thread(self.writer.write, body)
                if self.status >= 400 and len(self.error_body) <= ERROR_DETAIL_MAX:
                    self.error_body += body[:ERROR_DETAIL_MAX + 1]
            self.complete = not message.get("more_body", False)

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.discard()


class AsyncJobs:
    def __init__(self, app):
        self.app = app
        self.jobs: set[asyncio.Task] = set()   # running jobs: referenced so they are not collected
        self.accepting = 0                     # requests reading their body, slot already taken

    async def __call__(self, scope, receive, send):
        if not wants_async(scope):
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        limit = app.state.settings.max_async_jobs
        if len(self.jobs) + self.accepting >= limit:
            await _reply(send, 503, {"detail": f"this server is running its {limit} background jobs already; "
                                               f"retry in {BUSY_RETRY_AFTER_S} s, or send the request "
                                               "without Prefer: respond-async"},
                         [("retry-after", str(BUSY_RETRY_AFTER_S))])
            return
        state = scope["state"]
        task_id, owner = state["task_id"], state["key_id"]
        store = results_for(app)
        spool = BodySpool()
        self.accepting += 1
        started = False
        try:
            if not await read_body(receive, spool):
                return
            try:
                await asyncio.to_thread(_claim, store, task_id, owner)
            except TaskIdInUse:
                await _reply(send, 409, {"detail": f"task id {task_id} is in use by an earlier job until it expires; "
                                                   "send another X-Task-ID, or none to get a fresh one"})
                return
            job = asyncio.create_task(self._run(dict(scope), spool, store, task_id), name=f"async-job-{task_id}")
            self.jobs.add(job)
            job.add_done_callback(self.jobs.discard)
            started = True
        finally:
            self.accepting -= 1
            if not started:
                spool.close()
        location = task_path(task_id)
        await _reply(send, 202, {"task_id": task_id, "status": "queued", "status_url": location,
                                 "result_url": f"{location}/result"},
                     [("location", location), ("preference-applied", PREFER_ASYNC)])

    async def _run(self, scope, spool: BodySpool, store: TaskResults, task_id: str) -> None:
        """Run the request to its end and store the response. Never raises: a job has no caller."""
        # Our send speaks plain ASGI only: no zero-copy or path-send extensions.
        scope = {**scope, "extensions": {}}
        request_id = scope["state"].get("request_id", "")
        capture = ResponseCapture(store, task_id)
        # This task runs in its own context: a long job's model calls are not cut at model_timeout_s.
        NO_DEADLINE.set(True)
        stop = asyncio.Event()
        heartbeat = asyncio.create_task(_renew_lease(store, task_id, stop))
        failed = False
        try:
            await self.app(scope, spool.receiver(), capture.send)
        except asyncio.CancelledError:   # the replica is shutting down: the lease will run out
            log.warning("async job %s cancelled before it finished", task_id)
            capture.discard()
            raise
        except Exception:
            log.exception("async job %s failed, request id %s", task_id, request_id)
            failed = True
        finally:
            spool.close()
            stop.set()
            await heartbeat
        try:
            if failed or capture.status is None or not capture.complete:
                # What a synchronous request would have got: a 500 naming the request id.
                capture.discard()
                capture = ResponseCapture(store, task_id)
                error = internal_error_response(request_id)
                await capture.send({"type": "http.response.start", "status": error.status_code,
                                    "headers": error.raw_headers})
                await capture.send({"type": "http.response.body", "body": error.body})
            await self._finish(scope, store, task_id, capture)
        except Exception:
            log.exception("storing the result of async job %s failed", task_id)
            capture.discard()

    @staticmethod
    async def _finish(scope, store: TaskResults, task_id: str, capture: ResponseCapture) -> None:
        detail = error_detail(capture.status, bytes(capture.error_body))
        record = await asyncio.to_thread(store.finish, task_id, capture.writer, capture.status, detail)
        if record is None:
            log.warning("async job %s finished after its record was removed; result dropped", task_id)
            return
        # The route publishes its own final event; this one covers requests refused before the model
        # ran (a 4xx from validation), so progress sockets on this task close too.
        reporter = ProgressReporter(scope["app"].state.store, task_id)
        if capture.status < 400:
            reporter.completed()
        else:
            reporter.failed(detail)


def _claim(store: TaskResults, task_id: str, owner: str) -> None:
    store.maybe_sweep()
    store.create(task_id, owner)


async def _renew_lease(store: TaskResults, task_id: str, stop: asyncio.Event) -> None:
    """Renew the job's lease until ``stop``; a renewal in flight is awaited, never cut off, so it
    cannot land after (and undo) the record that says the job finished."""
    while True:
        try:
            await asyncio.wait_for(stop.wait(), store.heartbeat_s)
            return
        except asyncio.TimeoutError:
            pass
        try:
            await asyncio.to_thread(store.renew, task_id)
        except Exception:
            log.exception("renewing the lease of async job %s failed", task_id)


async def _reply(send, status: int, body: dict, headers: list[tuple[str, str]] = ()) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})

"""Where async jobs (``Prefer: respond-async``) keep their state and results: a folder shared by
every ingress replica (``settings.storage_dir``/tasks), so any replica answers for any task.

One folder per task id::

    tasks/<task_id>/meta.json   owner (key id), created, expires, lease, outcome: the task's record
    tasks/<task_id>/result      one JSON line {"status", "headers"} then the response body, as sent

Every file appears whole or not at all (written beside, then ``os.replace``): a reader on another
replica never sees half a record or half a result. The record is the commit point: a job writes
its result file first, then the record saying it finished, so a finished record always has its
result. Wall-clock times (``time.time()``) because replicas on different machines compare them.

Lifetimes:
* a running job renews its lease (``lease_s``) every ``heartbeat_s``; a record whose lease ran out
  without an outcome is a lost job (its replica died), answered as failed;
* a result is kept ``ttl_s`` after the job finished (``expires``), then its body is deleted and the
  record stays as a tombstone for ``tombstone_s`` more, so a late poll gets 410 (gone), not 404;
* ``sweep()`` does the deleting; ``maybe_sweep()`` runs it at most every ``sweep_every_s``.

Everything here is blocking file I/O: callers on an event loop use ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import BinaryIO

from serve_app.progress import valid_task_id

log = logging.getLogger("amphion.tasks")

META = "meta.json"
RESULT = "result"
TMP_SUFFIX = ".tmp"

HEARTBEAT_S = 10.0          # how often a running job renews its lease
LEASE_S = 3 * HEARTBEAT_S   # a job silent for this long is lost (two missed renewals to spare)
TOMBSTONE_S = 24 * 3600.0   # how long an expired task still answers 410 before it is unknown (404)
ERROR_DETAIL_MAX = 64 * 1024  # an error body larger than this is not parsed for its detail


class TaskIdInUse(Exception):
    """Another job (this key's or another's) holds this task id until it expires."""


@dataclass(frozen=True)
class TaskRecord:
    """A task's record (meta.json). ``status`` is None while the job runs, else the HTTP status
    of the stored response; ``detail`` is that response's error detail (empty on success)."""

    task_id: str
    owner: str             # the API key id that asked (serve_app.auth.KeyChecker.identify)
    created: float
    expires: float         # after this the result is gone (410)
    alive_until: float     # the running job's lease; meaningless once finished
    finished: float | None = None
    status: int | None = None
    detail: str = ""

    @property
    def done(self) -> bool:
        return self.status is not None

    def expired(self, now: float) -> bool:
        return now >= self.expires

    def lost(self, now: float) -> bool:
        """The job stopped renewing its lease without finishing: its replica went away."""
        return not self.done and now >= self.alive_until


class ResultWriter:
    """The response of a job as it is produced, into a temporary file beside the final one."""

    def __init__(self, folder: Path):
        self.path = folder / f".{RESULT}.{uuid.uuid4().hex}{TMP_SUFFIX}"
        self.file: BinaryIO = open(self.path, "wb")

    def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.file.write(json.dumps({"status": status, "headers": headers}).encode() + b"\n")

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


class StoredResult:
    """An open stored response: ``status``, ``headers``, and ``length`` bytes of body left in ``file``.

    The file stays readable once open even if a sweep deletes it meanwhile (POSIX keeps an unlinked
    file's data until it is closed). The caller closes it."""

    def __init__(self, file: BinaryIO, size: int):
        self.file = file
        head = json.loads(file.readline())
        self.status: int = head["status"]
        self.headers: list[tuple[str, str]] = [tuple(h) for h in head["headers"]]
        self.length = size - file.tell()

    def close(self) -> None:
        self.file.close()


def _write_json(path: Path, data: dict) -> None:
    """Replace ``path`` with ``data`` atomically: readers see the old file or the new one, never a mix."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}")
    try:
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def error_detail(status: int, body: bytes) -> str:
    """The one-line detail a failed job shows in its status: the route's `{"detail"}` when it is a
    string; for a list (422) or anything else, where to read it."""
    if status < 400:
        return ""
    detail = None
    if len(body) <= ERROR_DETAIL_MAX:
        try:
            detail = json.loads(body).get("detail")
        except (ValueError, AttributeError):
            detail = None
    if isinstance(detail, str) and detail:
        return detail
    return f"the request failed with HTTP {status}; its result has the details"


class TaskResults:
    def __init__(self, root: str | os.PathLike, ttl_s: float, *, heartbeat_s: float = HEARTBEAT_S,
                 lease_s: float = LEASE_S, tombstone_s: float = TOMBSTONE_S, sweep_every_s: float | None = None,
                 clock=time.time):
        """``clock``: wall-clock seconds (tests pass a fake one to step through lifetimes)."""
        self.root = Path(root)
        self.clock = clock
        self.ttl_s = ttl_s
        self.heartbeat_s = heartbeat_s
        self.lease_s = lease_s
        self.tombstone_s = tombstone_s
        self.sweep_every_s = min(ttl_s, 60.0) if sweep_every_s is None else sweep_every_s
        self._last_sweep = 0.0
        self.root.mkdir(parents=True, exist_ok=True)

    def _folder(self, task_id: str) -> Path:
        if not valid_task_id(task_id):   # the id names a folder: never a path trick
            raise ValueError("invalid task id")
        return self.root / task_id

    # -- the job's side ------------------------------------------------------------------------

    def create(self, task_id: str, owner: str) -> TaskRecord:
        """Claim ``task_id`` for ``owner`` and write its record (before the client hears of it, so
        any replica can answer at once). TaskIdInUse while an earlier task with this id is kept."""
        folder = self._folder(task_id)
        now = self.clock()
        record = TaskRecord(task_id=task_id, owner=owner, created=now, alive_until=now + self.lease_s,
                            expires=now + self.lease_s + self.ttl_s)
        for _ in range(2):
            try:
                folder.mkdir()   # atomic on every filesystem: one claimant wins
                break
            except FileExistsError:
                old = self.read(task_id)
                if old is not None and now < old.expires + self.tombstone_s:
                    raise TaskIdInUse(task_id) from None
                if old is None and time.time() - _mtime(folder) < self.lease_s:
                    raise TaskIdInUse(task_id) from None   # being created right now
                shutil.rmtree(folder, ignore_errors=True)   # long gone: reuse the id
        else:
            raise TaskIdInUse(task_id)
        _write_json(folder / META, asdict(record))
        return record

    def renew(self, task_id: str) -> None:
        """Extend a running job's lease (and so its record's life)."""
        record = self.read(task_id)
        if record is None or record.done:
            return
        now = self.clock()
        self._save(replace(record, alive_until=now + self.lease_s, expires=now + self.lease_s + self.ttl_s))

    def writer(self, task_id: str) -> ResultWriter:
        return ResultWriter(self._folder(task_id))

    def finish(self, task_id: str, writer: ResultWriter, status: int, detail: str) -> TaskRecord | None:
        """Publish the written result, then the record saying so (in that order: see the module doc).
        None when the task's record is gone (swept after its replica was thought lost)."""
        writer.file.close()
        record = self.read(task_id)
        if record is None:
            writer.discard()
            return None
        os.replace(writer.path, self._folder(task_id) / RESULT)
        now = self.clock()
        record = replace(record, finished=now, status=status, detail=detail, expires=now + self.ttl_s)
        self._save(record)
        return record

    def _save(self, record: TaskRecord) -> None:
        _write_json(self._folder(record.task_id) / META, asdict(record))

    # -- the reader's side ---------------------------------------------------------------------

    def read(self, task_id: str) -> TaskRecord | None:
        """The task's record, or None when there is no such task (or its id is not a task id)."""
        if not valid_task_id(task_id):
            return None
        try:
            data = json.loads((self.root / task_id / META).read_text())
            return TaskRecord(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, OSError):
            log.exception("unreadable record for task %s", task_id)
            return None

    def open_result(self, task_id: str) -> StoredResult | None:
        """The stored response of a finished task, open for reading; None if it is not there."""
        try:
            file = open(self._folder(task_id) / RESULT, "rb")
        except FileNotFoundError:
            return None
        try:
            return StoredResult(file, os.fstat(file.fileno()).st_size)
        except Exception:
            file.close()
            raise

    # -- expiry --------------------------------------------------------------------------------

    def maybe_sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= self.sweep_every_s:
            self._last_sweep = now
            self.sweep()

    def sweep(self) -> int:
        """Delete expired results (keeping their records as tombstones) and folders past their
        tombstone; returns how many folders went. Safe on several replicas at once."""
        now = self.clock()
        removed = 0
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False) or not valid_task_id(entry.name):
                continue
            folder = Path(entry.path)
            record = self.read(entry.name)
            if record is None:
                # a claim that never got its record (its replica died between mkdir and write)
                gone = time.time() - _mtime(folder) > self.lease_s + self.ttl_s
            else:
                gone = now >= record.expires + self.tombstone_s
            if gone:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
            elif record is not None and record.expired(now):
                for leftover in folder.iterdir():   # the result and any half-written temporary file
                    if leftover.name != META:
                        leftover.unlink(missing_ok=True)
        return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def results_for(app) -> TaskResults:
    """The application's task store, made on first use from its settings (configure_app set them)."""
    store = getattr(app.state, "task_results", None)
    if store is None:
        settings = app.state.settings
        store = TaskResults(Path(settings.storage_dir) / "tasks", settings.task_ttl_s)
        app.state.task_results = store
    return store

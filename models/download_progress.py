"""How far a download of official files has got: bytes received of the bytes planned, readable from
any thread (a service's 503 detail and health) and shown as one tqdm bar in the log.

Bytes come from two sources. ``huggingface_hub`` reports through progress bars of a class it is
given (:attr:`DownloadProgress.tqdm_class`): those bars stay silent and count here. A snapshot
download draws more than one byte bar for the same bytes (bytes received, bytes written), so a
source's progress is the furthest of its bars, not their sum. The pinned files (``models.pinned``)
report each chunk (:meth:`DownloadProgress.add`).
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from tqdm.auto import tqdm

#: Seconds between two progress lines in the log (each refresh of the bar is one line there).
LOG_INTERVAL_S = 5.0


class _LogLines:
    """A tqdm ``file`` that writes each refresh as its own line: in a replica's log, carriage
    returns would pile every refresh onto one line that is only flushed at the end."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


class DownloadProgress:
    """Bytes received of ``total`` (None until planned) for the download named ``label``."""

    def __init__(self, label: str, *, stream: TextIO | None = None):
        self.label = label
        self.total: int | None = None
        self._stream = stream
        self._lock = threading.Lock()
        self._finished = 0            # bytes of the sources already complete
        self._bars: dict[int, int] = {}  # the current source's byte bars: id -> bytes seen
        self._direct = 0              # the current source's bytes reported by add()
        self._bar: tqdm | None = None
        self.tqdm_class = _counting_bar_class(self)

    # -- reporting ---------------------------------------------------------------------------
    def plan(self, total: int) -> None:
        """Start counting towards ``total`` bytes (and draw the bar in the log)."""
        with self._lock:
            self.total = total
        self._bar = tqdm(total=total, desc=f"{self.label}: downloading weights", unit="B", unit_scale=True,
                         file=_LogLines(self._stream or sys.stderr), mininterval=LOG_INTERVAL_S, ascii=True)

    def add(self, n: int) -> None:
        """``n`` more bytes of the current source (a pinned file's chunk)."""
        with self._lock:
            self._direct += n
        self._refresh()

    def source_done(self) -> None:
        """The current source is complete: its bytes count as finished."""
        with self._lock:
            self._finished += self._current()
            self._bars.clear()
            self._direct = 0
        self._refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._refresh()
            self._bar.close()

    # -- reading -----------------------------------------------------------------------------
    @property
    def done(self) -> int:
        with self._lock:
            return self._finished + self._current()

    @property
    def fraction(self) -> float | None:
        """Share received, 0..1; None before the plan is known."""
        total = self.total
        if total is None:
            return None
        return 1.0 if total <= 0 else min(1.0, self.done / total)

    def summary(self) -> str:
        """``"42% (12.3 MB of 29.1 MB)"``, or what happens before the sizes are known."""
        fraction = self.fraction
        if fraction is None:
            return "checking the hub"
        return f"{int(fraction * 100)}% ({_size(self.done)} of {_size(self.total or 0)})"

    def as_dict(self) -> dict:
        fraction = self.fraction
        return {"done_bytes": self.done, "total_bytes": self.total,
                "percent": None if fraction is None else round(100 * fraction, 1)}

    # -- internals ---------------------------------------------------------------------------
    def _current(self) -> int:
        return max(self._bars.values(), default=0) + self._direct

    def _bar_moved(self, bar: int, n: float) -> None:
        with self._lock:
            self._bars[bar] = self._bars.get(bar, 0) + int(n)
        self._refresh()

    def _refresh(self) -> None:
        bar = self._bar
        if bar is not None:
            done = self.done
            bar.update(max(0, done - bar.n))


class SilentBar(tqdm):
    """A tqdm class for huggingface_hub's ``tqdm_class`` that draws nothing (planning a download)."""

    def __init__(self, *args, **kwargs):
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


def _counting_bar_class(progress: DownloadProgress) -> type:
    """A tqdm class for huggingface_hub's ``tqdm_class``: silent, its byte counts go to ``progress``."""

    class CountingBar(SilentBar):  # ours is the one bar shown
        def __init__(self, *args, **kwargs):
            self._counts_bytes = kwargs.get("unit") == "B"
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1):
            if self._counts_bytes and n:
                progress._bar_moved(id(self), n)
            return super().update(n)

    return CountingBar


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"

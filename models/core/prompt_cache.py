"""Prompt encodings kept per reference recording, so a voice used again is not encoded again.

A TTS or VC request encodes its reference (the "prompt") before generating: semantic tokens,
acoustic codes, content-style tokens, a prompt mel, a Whisper transcript. They depend only on the
recording, on what was computed from it (and how: which part of it, which settings), and on the
weights. A client that reuses a saved voice, uploads the same clip again, or streams a text sentence
by sentence sends the same reference each time, so those encodings are kept here and reused.

* :func:`prompt_key` names a recording: a digest of its samples and rate. The ingress sets it as the
  payload's ``prompt_key`` for the reference it sends (uploads and saved voices alike).
* :class:`PromptCache`: a bounded, thread-safe LRU of encodings, one per entry replica.
* :class:`PromptMemo`: one request's view of the cache for its reference: ``await memo.get(what,
  compute)`` answers the kept encoding or computes and keeps it, and records hits, misses and the
  seconds spent encoding (:meth:`PromptMemo.report`, shown in the response's ``Server-Timing``).
  A memo without a cache or key (in-process pipelines, requests without a reference) just computes.

Kept values are deep copies, handed out as copies: a caller that changes what it got cannot change
what the next request gets. Encodings are deterministic (no randomness is drawn before the
generating stages), so a hit gives the very bytes a miss would: outputs are equal bit for bit.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np

__all__ = ["PROMPT_CACHE_ENTRIES", "PROMPT_CACHE_MB", "PromptCache", "PromptMemo", "prompt_key", "value_bytes"]

T = TypeVar("T")

#: Encodings an entry replica keeps (a voice takes 2 to 4: tokens, codes, a mel, a transcript).
PROMPT_CACHE_ENTRIES = 256
#: And at most this many MB of them (a 60 s reference's largest encoding, Vevo's prompt mel, is ~1.5 MB).
PROMPT_CACHE_MB = 128

_MISSING = object()


def prompt_key(wave: np.ndarray, sample_rate: int) -> str:
    """The name of a recording: SHA-256 of its float32 samples and rate (32 hex digits)."""
    samples = np.ascontiguousarray(wave, dtype=np.float32).reshape(-1)
    digest = hashlib.sha256(f"{int(sample_rate)}:{samples.size}:".encode())
    digest.update(memoryview(samples).cast("B"))
    return digest.hexdigest()[:32]


def value_bytes(value: Any) -> int:
    """About how much memory a kept value holds (arrays, strings, and containers of them)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, dict):
        return sum(value_bytes(k) + value_bytes(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(value_bytes(v) for v in value)
    return 8


class PromptCache:
    """Least-recently-used encodings, at most ``max_entries`` and ``max_mb``; safe from any thread."""

    def __init__(self, max_entries: int = PROMPT_CACHE_ENTRIES, max_mb: float = PROMPT_CACHE_MB):
        self.max_entries = int(max_entries)
        self.max_bytes = int(max_mb * 1024 * 1024)
        self._items: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple, default: Any = None) -> Any:
        """A copy of the value kept under ``key`` (now the most recently used), else ``default``."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return default
            self._items.move_to_end(key)
            value = found[0]
        return copy.deepcopy(value)

    def put(self, key: tuple, value: Any) -> None:
        """Keep a copy of ``value``; the least recently used go to stay within both bounds. A value
        larger than the whole cache is not kept."""
        size = value_bytes(value)
        if size > self.max_bytes:
            return
        kept = copy.deepcopy(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (kept, size)
            self._bytes += size
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes


class _Log:
    """What one request's prompt encodings did: shared by a memo and its cuts."""

    def __init__(self):
        self.hits: list[str] = []
        self.misses: list[str] = []
        self.seconds = 0.0


class PromptMemo:
    """One request's encodings of its reference ``prompt_key`` in ``cache``.

    ``what`` (in :meth:`get`) says what is computed and with which settings, e.g.
    ``"semantic_tokens"`` or ``"whisper_prompt:4.0"``; the key is (``weights``, ``prompt_key``,
    ``what``), ``weights`` being the kind of weights the encoders hold (set by the entry before the
    orchestration runs: encodings of tiny weights are no use to official ones)."""

    def __init__(self, cache: PromptCache | None = None, prompt_key: str | None = None, *, weights: str | None = None,
                 _log: _Log | None = None):
        self.cache = cache
        self.prompt_key = prompt_key
        self.weights = weights
        self._log = _log or _Log()

    @property
    def enabled(self) -> bool:
        return self.cache is not None and self.prompt_key is not None

    def cut(self, samples: int) -> PromptMemo:
        """The memo for the first ``samples`` samples of this reference (a prompt cut to what its
        transcript covers); same cache, same report."""
        key = None if self.prompt_key is None else f"{self.prompt_key}[:{int(samples)}]"
        return PromptMemo(self.cache, key, weights=self.weights, _log=self._log)

    async def get(self, what: str, compute: Callable[[], Awaitable[T]]) -> T:
        """The encoding ``what`` of this reference: kept, or ``await compute()`` (then kept)."""
        key = (self.weights, self.prompt_key, what)
        if self.enabled:
            found = self.cache.get(key, _MISSING)
            if found is not _MISSING:
                self._log.hits.append(what)
                return found
        started = time.perf_counter()
        value = await compute()
        self._log.seconds += time.perf_counter() - started
        if self.enabled:
            self._log.misses.append(what)
            self.cache.put(key, value)
        return value

    def report(self) -> dict | None:
        """``{"hits", "misses", "seconds"}`` of this request's cached encodings (None: nothing was
        looked up, e.g. no prompt key). ``seconds``: time spent computing encodings (0 on a full hit)."""
        log = self._log
        if not log.hits and not log.misses:
            return None
        return {"hits": list(log.hits), "misses": list(log.misses), "seconds": log.seconds}

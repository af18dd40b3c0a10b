"""Sliding-window rate limits: N requests per minute per endpoint, M per hour per key.

Pure logic with no I/O: the shared-state actor owns one instance so every ingress replica counts
against the same windows. A sliding log (timestamps of counted requests) is exact at window
edges, where fixed windows would let a client send twice the limit across a boundary; each log
holds at most `limit` entries, so memory stays bounded per key.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass

MINUTE = 60.0
HOUR = 3600.0


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int            # the tighter window's limit
    remaining: int        # requests left in that window after this one
    reset_s: int          # seconds until that window frees a slot
    retry_after_s: int    # only meaningful when not allowed

    def as_dict(self) -> dict:
        return asdict(self)

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class SlidingWindowLimiter:
    def __init__(self, per_minute: int, per_hour: int):
        self.per_minute = per_minute
        self.per_hour = per_hour
        self._minute: dict[tuple[str, str], deque[float]] = {}
        self._hour: dict[str, deque[float]] = {}
        self._calls = 0

    @staticmethod
    def _prune(log: deque[float], now: float, window: float) -> None:
        while log and log[0] <= now - window:
            log.popleft()

    def hit(self, key_id: str, endpoint: str, now: float) -> RateDecision:
        """Count one request (when allowed) and say whether it may proceed.

        Refused requests are not counted: a client that keeps retrying early would otherwise
        never get back under the limit.
        """
        self._calls += 1
        if self._calls % 1024 == 0:
            self._sweep(now)
        minute = self._minute.setdefault((key_id, endpoint), deque())
        hour = self._hour.setdefault(key_id, deque())
        self._prune(minute, now, MINUTE)
        self._prune(hour, now, HOUR)

        waits = []
        if len(minute) >= self.per_minute:
            waits.append(minute[0] + MINUTE - now)
        if len(hour) >= self.per_hour:
            waits.append(hour[0] + HOUR - now)
        allowed = not waits
        if allowed:
            minute.append(now)
            hour.append(now)

        minute_left = self.per_minute - len(minute)
        hour_left = self.per_hour - len(hour)
        if minute_left <= hour_left:
            limit, left, log, window = self.per_minute, minute_left, minute, MINUTE
        else:
            limit, left, log, window = self.per_hour, hour_left, hour, HOUR
        reset = (log[0] + window - now) if log else 0.0
        retry = max(waits) if waits else 0.0
        return RateDecision(
            allowed=allowed,
            limit=limit,
            remaining=max(0, left),
            reset_s=max(0, math.ceil(reset)),
            retry_after_s=max(1, math.ceil(retry)) if not allowed else 0,
        )

    def _sweep(self, now: float) -> None:
        """Drop logs that have emptied, so idle keys do not accumulate."""
        for store, window in ((self._minute, MINUTE), (self._hour, HOUR)):
            for k in list(store):
                self._prune(store[k], now, window)
                if not store[k]:
                    del store[k]

"""Per-key request rate limits: an in-memory token bucket per key (per process, not shared)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Token buckets keyed by API key id; a bucket holds one minute's worth of requests.

    Each process keeps its own buckets, so N replicas allow up to N times the limit in total.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # key id -> (tokens left, time of the last refill)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str, per_minute: int) -> float | None:
        """Spend one request of ``key_id``'s budget; None if allowed, else seconds to wait."""
        rate = per_minute / 60.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return None
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / rate

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._buckets.pop(key_id, None)


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}

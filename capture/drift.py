"""The drift signal: how much of a function's traffic is novel, hour by hour.

A rising share of novel inputs means traffic is moving away from what the function was labelled
on (a new product, a new camera, a class nobody labelled): the number a team alerts on. Counts
are kept per UTC hour for the last ``keep_hours`` hours, in memory of the serving process (each
replica counts the traffic it served; Prometheus sums replicas).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

HOUR = 3600


@dataclass(frozen=True)
class HourOfTraffic:
    """Scored invokes and novel ones in one UTC hour starting at ``start`` (POSIX seconds)."""

    start: int
    invokes: int
    novel: int

    @property
    def novel_share(self) -> float | None:
        return self.novel / self.invokes if self.invokes else None


class NoveltyTraffic:
    """Per-function hourly counts of scored and novel invokes; thread-safe."""

    def __init__(self, *, keep_hours: int = 48, clock: Callable[[], float] = time.time) -> None:
        """
        Args:
            keep_hours: hours of history kept per function.
            clock: seconds since the epoch; injected so tests can move time.
        """
        self._keep = keep_hours
        self._clock = clock
        self._hours: dict[str, dict[int, list[int]]] = {}
        self._totals: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def record(self, function_id: str, *, novel: bool) -> None:
        """Count one invoke whose novelty was scored."""
        hour = int(self._clock()) // HOUR * HOUR
        with self._lock:
            hours = self._hours.setdefault(function_id, {})
            counts = hours.setdefault(hour, [0, 0])
            counts[0] += 1
            counts[1] += int(novel)
            totals = self._totals.setdefault(function_id, [0, 0])
            totals[0] += 1
            totals[1] += int(novel)
            for old in [h for h in hours if h <= hour - self._keep * HOUR]:
                del hours[old]

    def hours(self, function_id: str, last: int = 24) -> list[HourOfTraffic]:
        """The last ``last`` UTC hours with traffic, oldest first (hours with none omitted)."""
        now_hour = int(self._clock()) // HOUR * HOUR
        with self._lock:
            hours = dict(self._hours.get(function_id, {}))
        return [
            HourOfTraffic(start, counts[0], counts[1])
            for start, counts in sorted(hours.items())
            if start > now_hour - last * HOUR
        ]

    def totals(self) -> dict[str, tuple[int, int]]:
        """Every function's (scored, novel) invokes since this process started."""
        with self._lock:
            return {fid: (t[0], t[1]) for fid, t in self._totals.items()}

    def current_share(self, function_id: str) -> float | None:
        """Novel share of the current UTC hour (None before any scored invoke in it)."""
        hours = self.hours(function_id, last=1)
        return hours[-1].novel_share if hours else None

    def drop(self, function_id: str) -> None:
        with self._lock:
            self._hours.pop(function_id, None)
            self._totals.pop(function_id, None)

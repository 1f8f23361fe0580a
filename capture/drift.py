"""The drift signal: how much of a function's traffic is novel, hour by hour.

A rising share of novel inputs means traffic is moving away from what the function was labelled
on (a new product, a new camera, a class nobody labelled): the number a team alerts on. The same
counts give the dashboard's capture rate, so every invoke that goes through capture is counted,
scored for novelty or not. Counts are kept per UTC hour for the last ``keep_hours`` hours, in
memory of the serving process (each replica counts the traffic it served; Prometheus sums
replicas).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

HOUR = 3600


@dataclass(frozen=True)
class HourOfTraffic:
    """One UTC hour of a function's traffic, starting at ``start`` (POSIX seconds): every invoke
    that went through capture, those whose novelty was scored, and of those the novel ones."""

    start: int
    invokes: int
    scored: int
    novel: int

    @property
    def novel_share(self) -> float | None:
        """Novel share of the scored invokes (None before any): unscored ones say nothing."""
        return self.novel / self.scored if self.scored else None


@dataclass(frozen=True)
class TrafficTotals:
    """A function's invokes, scored invokes and novel invokes since this process started."""

    invokes: int
    scored: int
    novel: int


class NoveltyTraffic:
    """Per-function hourly counts of invokes, scored invokes and novel invokes; thread-safe.

    Every invoke is counted, scored or not (before the function's novelty model exists, or with
    a model of another dimension, none is), so the counts are also the denominator of the
    capture rate; the novel share divides by the scored ones only.
    """

    def __init__(self, *, keep_hours: int = 48, clock: Callable[[], float] = time.time) -> None:
        """
        Args:
            keep_hours: hours of history kept per function.
            clock: seconds since the epoch; injected so tests can move time.
        """
        self._keep = keep_hours
        self._clock = clock
        # counts are [invokes, scored, novel], per hour and since start-up
        self._hours: dict[str, dict[int, list[int]]] = {}
        self._totals: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def record(self, function_id: str, *, novel: bool | None) -> None:
        """Count one invoke.

        Args:
            function_id: the function invoked.
            novel: whether its calibrated novelty passed the threshold; None when its novelty
                was not scored (it counts as an invoke, not in the novel share).
        """
        hour = int(self._clock()) // HOUR * HOUR
        step = (1, 0 if novel is None else 1, int(bool(novel)))
        with self._lock:
            hours = self._hours.setdefault(function_id, {})
            for counts in (
                hours.setdefault(hour, [0, 0, 0]),
                self._totals.setdefault(function_id, [0, 0, 0]),
            ):
                for i, n in enumerate(step):
                    counts[i] += n
            for old in [h for h in hours if h <= hour - self._keep * HOUR]:
                del hours[old]

    def hours(self, function_id: str, last: int = 24) -> list[HourOfTraffic]:
        """The last ``last`` UTC hours with traffic, oldest first (hours with none omitted)."""
        now_hour = int(self._clock()) // HOUR * HOUR
        with self._lock:
            hours = {start: tuple(c) for start, c in self._hours.get(function_id, {}).items()}
        return [
            HourOfTraffic(start, *counts)
            for start, counts in sorted(hours.items())
            if start > now_hour - last * HOUR
        ]

    def totals(self) -> dict[str, TrafficTotals]:
        """Every function's counts since this process started."""
        with self._lock:
            return {fid: TrafficTotals(*t) for fid, t in self._totals.items()}

    def current_share(self, function_id: str) -> float | None:
        """Novel share of the current UTC hour's scored invokes (None before any in it)."""
        hours = self.hours(function_id, last=1)
        return hours[-1].novel_share if hours else None

    def drop(self, function_id: str) -> None:
        with self._lock:
            self._hours.pop(function_id, None)
            self._totals.pop(function_id, None)

"""Retraining off the request path: per-function training status and an APScheduler interval job.

One training per function at a time: :meth:`TrainingTracker.run` holds the function's lock for
the whole training, and the scheduler's tick skips a function that is already training (the
trigger is coalesced into that run's successor, decided at the next tick).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

PHASES = ("loading", "training", "comparing", "saving", "deploying")


@dataclass(frozen=True)
class TrainingStatus:
    """What a function's training is doing now and how the last one ended."""

    # idle | training | failed (the last training raised; the deployed model is unchanged)
    state: str = "idle"
    # Current step while training: one of PHASES.
    phase: str | None = None
    # Fraction of the phases done, 0..1.
    progress: float = 0.0
    # What started the current or last training: manual | schedule.
    trigger: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_error: str | None = None
    # Version trained by the last successful run (deployed or not).
    last_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrainingTracker:
    """Per-function training locks and status, shared by manual and scheduled training."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._status: dict[str, TrainingStatus] = {}

    def _lock(self, function_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(function_id, threading.Lock())

    def is_training(self, function_id: str) -> bool:
        return self._lock(function_id).locked()

    @contextmanager
    def run(self, function_id: str, trigger: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold the function's training slot; yields False (and runs nothing) when ``wait`` is
        False and another training is in progress."""
        lock = self._lock(function_id)
        if not lock.acquire(blocking=wait):
            yield False
            return
        try:
            self._set(
                function_id,
                state="training",
                phase=PHASES[0],
                progress=0.0,
                trigger=trigger,
                started_at=_now(),
                finished_at=None,
            )
            yield True
        except BaseException as exc:
            self._set(function_id, state="failed", finished_at=_now(), last_error=str(exc))
            raise
        else:
            self._set(
                function_id,
                state="idle",
                phase=None,
                progress=1.0,
                finished_at=_now(),
                last_error=None,
            )
        finally:
            lock.release()

    def phase(self, function_id: str, phase: str) -> None:
        self._set(function_id, phase=phase, progress=PHASES.index(phase) / len(PHASES))

    def trained(self, function_id: str, version: int) -> None:
        self._set(function_id, last_version=version)

    def status(self, function_id: str) -> TrainingStatus:
        with self._guard:
            return self._status.get(function_id, TrainingStatus())

    def forget(self, function_id: str) -> None:
        with self._guard:
            self._status.pop(function_id, None)

    def _set(self, function_id: str, **changes: Any) -> None:
        with self._guard:
            current = self._status.get(function_id, TrainingStatus())
            self._status[function_id] = replace(current, **changes)


class RetrainScheduler:
    """Calls ``tick`` every ``interval`` seconds in one background thread (APScheduler 3).

    Runs never overlap (``max_instances=1``) and missed runs collapse into one (``coalesce``).

    Args:
        interval: seconds between ticks.
        tick: the check; it decides which functions to retrain and trains them.
    """

    def __init__(self, *, interval: float, tick: Callable[[], None]) -> None:
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        self._job = self._scheduler.add_job(
            tick, "interval", seconds=interval, id="retrain", name="retrain check"
        )

    def start(self) -> None:
        self._scheduler.start()

    def kick(self) -> None:
        """Run the check now instead of at the next interval."""
        self._job.modify(next_run_time=_now())

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)


def _now() -> datetime:
    return datetime.now(UTC)

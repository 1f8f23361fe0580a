"""Retraining off the request path: per-function training status, the debounce that lets a burst
of annotations settle, and the scheduler (APScheduler) that runs the retrain check.

One training per function at a time: :meth:`TrainingTracker.run` holds the function's lock for
the whole training, and the scheduler's tick skips a function that is already training (the
trigger is coalesced into that run's successor, decided at the next tick).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from learner.errors import TrainingCancelled

log = logging.getLogger(__name__)

PHASES = ("loading", "training", "comparing", "refitting", "saving", "deploying")


@dataclass(frozen=True)
class TrainingStatus:
    """What a function's training is doing now and how the last one ended."""

    # idle | training | failed (the last training raised; the deployed model is unchanged) |
    # cancelled (the last training was cancelled; nothing was recorded)
    state: str = "idle"
    # What runs or ran: head (a head on the stored vectors) | finetune (a tuned challenger,
    # service.finetune)
    kind: str = "head"
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
        self._cancel: dict[str, threading.Event] = {}

    def _lock(self, function_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(function_id, threading.Lock())

    def is_training(self, function_id: str) -> bool:
        return self._lock(function_id).locked()

    @contextmanager
    def run(
        self, function_id: str, trigger: str, *, wait: bool = True, kind: str = "head"
    ) -> Iterator[bool]:
        """Hold the function's training slot; yields False (and runs nothing) when ``wait`` is
        False and another training is in progress."""
        lock = self._lock(function_id)
        if not lock.acquire(blocking=wait):
            yield False
            return
        with self._guard:
            self._cancel[function_id] = threading.Event()
        try:
            self._set(
                function_id,
                state="training",
                kind=kind,
                phase=PHASES[0],
                progress=0.0,
                trigger=trigger,
                started_at=_now(),
                finished_at=None,
            )
            yield True
        except TrainingCancelled:
            self._set(function_id, state="cancelled", phase=None, finished_at=_now())
            raise
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
            with self._guard:
                self._cancel.pop(function_id, None)
            lock.release()

    def phase(self, function_id: str, phase: str, done: float = 0.0) -> None:
        """The run is in ``phase``, ``done`` (0..1) of the way through it."""
        progress = (PHASES.index(phase) + min(max(done, 0.0), 1.0)) / len(PHASES)
        self._set(function_id, phase=phase, progress=progress)

    def cancel(self, function_id: str) -> bool:
        """Ask the function's running training to stop; False when none runs in this process.
        A training that checks (:meth:`cancelled`) raises :class:`TrainingCancelled`."""
        with self._guard:
            event = self._cancel.get(function_id)
        if event is None:
            return False
        event.set()
        return True

    def cancelled(self, function_id: str) -> bool:
        """Whether :meth:`cancel` was asked of the function's running training."""
        with self._guard:
            event = self._cancel.get(function_id)
        return event is not None and event.is_set()

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


class Debounce:
    """When pending work is due: once nothing new arrived for ``quiet`` seconds, and at the latest
    ``longest`` seconds after the first arrival (continuous arrivals never starve it).

    Args:
        quiet: seconds without an arrival after which the work is due.
        longest: seconds after the first arrival after which it is due whatever still arrives.
        clock: seconds since the epoch (arrivals may be timestamps read from the database).
    """

    def __init__(
        self, *, quiet: float, longest: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._quiet, self._longest, self._clock = quiet, longest, clock
        self._guard = threading.Lock()
        self._first: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def arrived(self, key: str, at: float | None = None) -> None:
        """Something for ``key`` arrived ``at`` (now when None); the earliest counts as first."""
        at = self._clock() if at is None else at
        with self._guard:
            self._first[key] = min(self._first.get(key, at), at)
            self._last[key] = max(self._last.get(key, at), at)

    def wait(self, key: str) -> float:
        """Seconds until ``key``'s work is due; 0 when due now or nothing arrived."""
        with self._guard:
            if key not in self._last:
                return 0.0
            due = min(self._last[key] + self._quiet, self._first[key] + self._longest)
        return max(0.0, due - self._clock())

    def clear(self, key: str) -> None:
        """The work started: what arrives from now on is a new burst."""
        with self._guard:
            self._first.pop(key, None)
            self._last.pop(key, None)


class RetrainScheduler:
    """Calls ``tick`` every ``interval`` seconds, and sooner when kicked (APScheduler 3, one
    worker thread).

    Runs never overlap, and none is skipped with a warning: the interval job pauses while a
    tick runs, and a kick that comes meanwhile is kept and honoured when it ends (at once when
    already due, a due kick running in the same worker without a second job instance; later
    ones as the job's next run time). Kicks coalesce; none is lost.

    Args:
        interval: seconds between ticks.
        tick: the check; it decides which functions to retrain and trains them.
    """

    def __init__(self, *, interval: float, tick: Callable[[], None]) -> None:
        self._tick = tick
        self._guard = threading.Lock()
        self._running = False
        self._stopping = False
        self._kicked: datetime | None = None  # a kick's time, made while a tick ran
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )
        self._job = self._scheduler.add_job(
            self._run, "interval", seconds=interval, id="retrain", name="retrain check"
        )

    def start(self) -> None:
        self._scheduler.start()

    def kick(self, delay: float = 0.0) -> None:
        """Run the check in ``delay`` seconds, unless one is due sooner."""
        at = _now() + timedelta(seconds=delay)
        with self._guard:
            if self._stopping:
                return
            if self._running:
                self._kicked = at if self._kicked is None else min(self._kicked, at)
                return
            due = self._job.next_run_time
            if due is None or at < due:
                self._job.modify(next_run_time=at)

    def shutdown(self) -> None:
        """Stop, after the running tick (if any) ends. APScheduler holds its job-store lock while
        it waits for that tick, so from here on the tick leaves the job alone (else both would
        wait for each other)."""
        with self._guard:
            self._stopping = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def _run(self) -> None:
        with self._guard:
            if self._stopping:
                return
            self._running = True
            self._job.pause()  # the interval cannot fire into a running tick
        while True:
            try:
                self._tick()
            except Exception:  # the scheduler must outlive one failed check
                log.exception("retrain check failed")
            with self._guard:
                kicked, self._kicked = self._kicked, None
                if self._stopping:
                    return
                if kicked is not None and kicked <= _now():
                    continue  # kicked while it ran, and due: run again, in this worker
                self._running = False
                self._job.resume()  # next run: an interval from now, or the kick if sooner
                if kicked is not None and kicked < self._job.next_run_time:
                    self._job.modify(next_run_time=kicked)
                return


def _now() -> datetime:
    return datetime.now(UTC)

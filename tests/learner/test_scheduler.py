"""The retrain scheduler's debounce and its background thread."""

from __future__ import annotations

import threading

import pytest

from learner.scheduler import Debounce, RetrainScheduler
from tests.api.live import wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_debounce_waits_for_quiet_but_never_starves() -> None:
    clock = Clock()
    burst = Debounce(quiet=2.0, longest=10.0, clock=clock)
    assert burst.wait("f") == 0.0  # nothing arrived: nothing to wait for
    burst.arrived("f")
    assert burst.wait("f") == 2.0
    for _ in range(4):  # an arrival every 1.5 s keeps pushing it back
        clock.now += 1.5
        burst.arrived("f")
        assert burst.wait("f") == 2.0
    clock.now += 1.5  # 7.5 s after the first
    burst.arrived("f")
    assert burst.wait("f") == pytest.approx(2.0)
    clock.now += 1.5  # 9 s: the longest wait caps it, however busy
    burst.arrived("f")
    assert burst.wait("f") == pytest.approx(1.0)
    clock.now += 1.0
    assert burst.wait("f") == 0.0
    assert burst.wait("g") == 0.0  # per key
    burst.clear("f")
    assert burst.wait("f") == 0.0


def test_debounce_takes_arrival_times_out_of_order() -> None:
    clock = Clock()
    burst = Debounce(quiet=2.0, longest=10.0, clock=clock)
    burst.arrived("f", at=clock.now - 1.0)
    burst.arrived("f", at=clock.now - 5.0)  # older: moves the first, not the last
    assert burst.wait("f") == pytest.approx(1.0)
    clock.now += 4.5  # 9.5 s after the first one, 5.5 s after the last
    assert burst.wait("f") == 0.0


def test_kicks_while_a_tick_runs_are_kept_and_ticks_never_overlap() -> None:
    running, release = threading.Event(), threading.Event()
    ticks: list[int] = []
    overlapping: list[bool] = []
    busy = threading.Lock()

    def tick() -> None:
        overlapping.append(not busy.acquire(blocking=False))
        try:
            ticks.append(len(ticks))
            running.set()
            release.wait(timeout=30)
        finally:
            busy.release()

    scheduler = RetrainScheduler(interval=3600, tick=tick)
    scheduler.start()
    try:
        scheduler.kick()
        assert running.wait(timeout=30)
        for _ in range(5):  # kicked while the first tick runs: one more tick, at once after it
            scheduler.kick()
        release.set()
        wait_until(lambda: len(ticks) == 2, what="the kicked tick")
    finally:
        scheduler.shutdown()
    assert ticks == [0, 1] and overlapping == [False, False]


def test_a_failing_tick_does_not_stop_the_scheduler() -> None:
    calls: list[int] = []

    def tick() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    scheduler = RetrainScheduler(interval=3600, tick=tick)
    scheduler.start()
    try:
        scheduler.kick()
        wait_until(lambda: len(calls) == 1, what="first tick")
        scheduler.kick()
        wait_until(lambda: len(calls) == 2, what="second tick")
    finally:
        scheduler.shutdown()


def test_shutdown_while_a_tick_runs_waits_for_it_and_returns() -> None:
    """APScheduler holds its job-store lock while it waits for the running tick; a tick that then
    touched the job (to resume it) waited for that lock forever, and so did the shutdown."""
    started, release = threading.Event(), threading.Event()

    def tick() -> None:
        started.set()
        release.wait(10)

    scheduler = RetrainScheduler(interval=3600, tick=tick)
    scheduler.start()
    scheduler.kick()
    assert started.wait(10)
    scheduler.kick()  # kicked while it runs: would be honoured when it ends
    stopper = threading.Thread(target=scheduler.shutdown)
    stopper.start()
    release.set()
    stopper.join(10)
    assert not stopper.is_alive(), "shutdown deadlocked with the tick it waited for"

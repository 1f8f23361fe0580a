"""service.combining.Combiner: concurrent items run in batches, each thread gets its own outcome."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from service.combining import Combiner


def test_one_thread_alone_runs_its_own_item_at_once() -> None:
    combiner: Combiner[int, int] = Combiner()
    batches: list[list[int]] = []

    def work(items: Sequence[int]) -> list[int | Exception]:
        batches.append(list(items))
        return [item * 10 for item in items]

    assert [combiner.run(item, work) for item in (1, 2, 3)] == [10, 20, 30]
    assert batches == [[1], [2], [3]]


def test_items_arriving_while_a_batch_runs_form_the_next_batch_and_each_gets_its_result() -> None:
    combiner: Combiner[int, int] = Combiner()
    batches: list[list[int]] = []
    first_running, release = threading.Event(), threading.Event()

    def work(items: Sequence[int]) -> list[int | Exception]:
        batches.append(list(items))
        if items == [0]:
            first_running.set()
            assert release.wait(10)
        return [item * 10 for item in items]

    results: dict[int, int] = {}

    def submit(item: int) -> None:
        results[item] = combiner.run(item, work)

    leader = threading.Thread(target=submit, args=(0,))
    leader.start()
    assert first_running.wait(10)
    followers = [threading.Thread(target=submit, args=(item,)) for item in range(1, 6)]
    for thread in followers:
        thread.start()
    while len(combiner._queue) < 5:  # every follower queued behind the running batch
        threading.Event().wait(0.001)
    release.set()
    for thread in [leader, *followers]:
        thread.join(10)
    assert results == {item: item * 10 for item in range(6)}
    assert batches[0] == [0]
    assert sorted(batches[1]) == [1, 2, 3, 4, 5]  # one batch for all five, in one call
    assert len(batches) == 2


def test_an_item_that_fails_raises_in_its_own_thread_only() -> None:
    combiner: Combiner[int, int] = Combiner()

    def work(items: Sequence[int]) -> list[int | Exception]:
        return [ValueError(f"bad {item}") if item < 0 else item for item in items]

    with pytest.raises(ValueError, match="bad -1"):
        combiner.run(-1, work)
    assert combiner.run(4, work) == 4


def test_a_failing_batch_fails_each_item_and_the_combiner_still_serves() -> None:
    combiner: Combiner[int, int] = Combiner()

    def broken(items: Sequence[int]) -> list[int | Exception]:
        raise RuntimeError("the head failed")

    def short(items: Sequence[int]) -> list[int | Exception]:
        return []

    with pytest.raises(RuntimeError, match="the head failed"):
        combiner.run(1, broken)
    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        combiner.run(1, short)
    assert combiner.run(2, lambda items: list(items)) == 2


def test_a_leader_interrupted_by_a_base_exception_leaves_no_thread_waiting() -> None:
    """KeyboardInterrupt in the leading thread: the queued items fail, the next batch still
    gets a leader, and later items run."""
    combiner: Combiner[int, int] = Combiner()
    running, release = threading.Event(), threading.Event()

    def work(items: Sequence[int]) -> list[int | Exception]:
        if items == [0]:
            running.set()
            assert release.wait(10)
            raise KeyboardInterrupt
        return list(items)

    outcomes: dict[int, object] = {}

    def submit(item: int) -> None:
        try:
            outcomes[item] = combiner.run(item, work)
        except BaseException as exc:  # noqa: BLE001 - the test records what each thread got
            outcomes[item] = type(exc)

    leader = threading.Thread(target=submit, args=(0,))
    leader.start()
    assert running.wait(10)
    follower = threading.Thread(target=submit, args=(1,))
    follower.start()
    while not combiner._queue:
        threading.Event().wait(0.001)
    release.set()
    leader.join(10)
    follower.join(10)
    assert outcomes == {0: KeyboardInterrupt, 1: 1}
    assert combiner.run(2, work) == 2

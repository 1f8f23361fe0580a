"""PixelBudget: reserve and release, a bounded wait then DecodeBudgetExhausted, a waiter admitted
when room is released, the rule for an image larger than the whole budget, and misuse refused."""

from __future__ import annotations

import threading
import time

import pytest

from embeddings import DecodeBudgetExhausted, PixelBudget

DEADLINE_S = 10.0


def test_reservations_add_up_to_the_capacity_and_release_gives_room_back() -> None:
    budget = PixelBudget(100, wait_s=0)
    assert budget.capacity == 100 and budget.reserved == 0
    assert budget.try_reserve(60)
    budget.reserve(40)  # fits exactly
    assert budget.reserved == 100
    assert not budget.try_reserve(1)
    budget.release(60)
    assert budget.reserved == 40
    assert budget.try_reserve(60)
    budget.release(60)
    budget.release(40)
    assert budget.reserved == 0


def test_a_full_budget_waits_then_fails_with_retry_after_and_holds_nothing() -> None:
    budget = PixelBudget(100, wait_s=0.05)
    budget.reserve(90)
    with pytest.raises(DecodeBudgetExhausted, match="decode budget of 100 pixels") as failed:
        budget.reserve(20)
    assert failed.value.retry_after == 0.05
    assert budget.reserved == 90  # the failed reservation took nothing


def test_a_waiting_reservation_gets_room_another_thread_releases() -> None:
    budget = PixelBudget(100, wait_s=DEADLINE_S)
    budget.reserve(100)
    waiting, admitted = threading.Event(), threading.Event()

    def reserve() -> None:
        waiting.set()
        budget.reserve(30)
        admitted.set()

    thread = threading.Thread(target=reserve)
    thread.start()
    assert waiting.wait(DEADLINE_S)
    assert not admitted.is_set()  # the budget is full: it cannot have got in
    budget.release(100)
    assert admitted.wait(DEADLINE_S)
    thread.join(DEADLINE_S)
    assert budget.reserved == 30


def test_an_image_larger_than_the_budget_is_decoded_alone() -> None:
    budget = PixelBudget(100, wait_s=0)
    assert budget.try_reserve(1)
    assert not budget.try_reserve(250)  # waits for an empty budget, never refused for good
    budget.release(1)
    assert budget.try_reserve(250)
    assert budget.reserved == 100  # it holds the whole budget
    assert not budget.try_reserve(1)
    budget.release(250)
    assert budget.reserved == 0


def test_concurrent_reservations_never_pass_the_capacity() -> None:
    budget = PixelBudget(100, wait_s=DEADLINE_S)
    seen: list[int] = []
    lock = threading.Lock()

    def work(pixels: int) -> None:
        for _ in range(200):
            budget.reserve(pixels)
            with lock:
                seen.append(budget.reserved)
            budget.release(pixels)

    threads = [threading.Thread(target=work, args=(p,)) for p in (30, 40, 50, 70, 100, 130)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads)
    assert len(seen) == 6 * 200 and max(seen) <= 100
    assert budget.reserved == 0


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 pixel"):
        PixelBudget(0)
    with pytest.raises(ValueError, match="wait"):
        PixelBudget(10, wait_s=-1)
    budget = PixelBudget(10)
    with pytest.raises(ValueError, match="-1 pixels"):
        budget.try_reserve(-1)
    budget.reserve(5)
    with pytest.raises(RuntimeError, match="more decoded pixels than were reserved"):
        budget.release(6)
    assert budget.reserved == 5

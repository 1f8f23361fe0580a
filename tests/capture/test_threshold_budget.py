from __future__ import annotations

import numpy as np

from capture import AdaptiveThreshold, CaptureBudget


def test_threshold_uses_initial_value_until_history_then_quantile() -> None:
    threshold = AdaptiveThreshold(window=200, quantile=0.9, initial=0.7)
    for score in np.linspace(0.0, 0.4, 49):
        threshold.observe(float(score))
    assert threshold.current() == 0.7
    threshold.observe(0.4)
    assert threshold.current() < 0.4


def test_threshold_window_forgets_old_scores() -> None:
    threshold = AdaptiveThreshold(window=100, quantile=0.5, initial=0.0)
    for _ in range(100):
        threshold.observe(0.9)
    assert threshold.current() == 0.9
    for _ in range(100):
        threshold.observe(0.1)
    assert threshold.current() == 0.1
    assert threshold.observed == 100
    np.testing.assert_allclose(threshold.recent_scores(), 0.1)


def test_budget_counts_commits_and_open_reservations_in_rolling_windows() -> None:
    budget = CaptureBudget(max_per_hour=2, max_per_day=3, reservation_ttl=60)
    first = budget.reserve(0.0)
    assert budget.exhausted(0.0) is None
    second = budget.reserve(0.0)
    assert budget.exhausted(0.0) == "budget_hour"  # open reservations hold their slot
    assert budget.release(second) and not budget.release(second)
    assert budget.commit(first, 1.0) and not budget.commit(first, 1.0)
    assert budget.used(1.0) == (1, 1)
    assert budget.commit(budget.reserve(2.0), 2.0)
    assert budget.exhausted(3.0) == "budget_hour"
    assert budget.exhausted(3602.0) is None  # both commits left the hour window
    assert budget.commit(budget.reserve(3602.0), 3602.0)
    assert budget.exhausted(3603.0) == "budget_day"
    assert budget.exhausted(86_402.0) is None


def test_expired_reservation_frees_its_slot_but_a_late_commit_still_counts_once() -> None:
    budget = CaptureBudget(max_per_hour=1, max_per_day=10, reservation_ttl=60)
    token = budget.reserve(0.0)
    assert budget.exhausted(30.0) == "budget_hour"
    assert budget.exhausted(61.0) is None
    assert budget.commit(token, 62.0)
    assert not budget.commit(token, 63.0)
    assert budget.used(63.0) == (1, 1)


def test_the_shared_record_of_captures_replaces_what_the_budget_counted() -> None:
    budget = CaptureBudget(max_per_hour=2, max_per_day=3, reservation_ttl=60)
    budget.commit(budget.reserve(100_000.0), 100_000.0)
    # the queue holds this capture and three from other processes (one more than a day ago)
    budget.set_committed([99_000.0, 10_000.0, 90_000.0, 100_000.0])
    assert budget.used(100_000.0) == (2, 3)  # hour: 99,000 and 100,000; 10,000 is too old
    assert budget.exhausted(100_000.0) == "budget_day"
    assert budget.used(103_600.0) == (0, 3)
    assert budget.used(176_400.0) == (0, 2)  # 90,000 left the day


def test_a_reservation_can_ask_whether_it_still_fits() -> None:
    budget = CaptureBudget(max_per_hour=2, max_per_day=5, reservation_ttl=60)
    token = budget.reserve(10.0)
    budget.set_committed([5.0])
    assert budget.exhausted(11.0) == "budget_hour"  # 1 committed + 1 open
    assert budget.exhausted(11.0, excluding=token) is None  # the open one is the asker
    budget.set_committed([5.0, 6.0])  # another process took the last slot meanwhile
    assert budget.exhausted(11.0, excluding=token) == "budget_hour"

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from capture import (
    CaptureController,
    CapturePolicy,
    InvalidArray,
    VectorIndex,
    add_pending,
    margin_uncertainty,
)

from .conftest import clustered_vectors, random_probabilities

LABELS = ["cat", "dog", "fox", "owl", "eel"]
PLENTY = {label: 1000 for label in [*LABELS, "a", "b", "c"]}  # no class is rare


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make_controller(clock: FakeClock | None = None, seed: int = 0, **settings) -> CaptureController:
    defaults = {"max_per_hour": 100_000, "max_per_day": 100_000, "random_rate": 0.0}
    policy = CapturePolicy(**{**defaults, **settings})
    return CaptureController(policy, clock=clock or FakeClock(), rng=np.random.default_rng(seed))


def populated_index(dim: int = 32, size: int = 300) -> VectorIndex:
    index = VectorIndex(dim)
    index.add(np.arange(size), clustered_vectors(size, dim, clusters=10, seed=11), "labelled")
    return index


@pytest.mark.parametrize("temperature", [1.0, 0.3])  # a confused head and a confident one
def test_capture_rate_tracks_target_and_prefers_uncertain_inputs(temperature: float) -> None:
    n = 5000
    proba = random_probabilities(n, 5, seed=21) ** (1 / temperature)
    proba /= proba.sum(axis=1, keepdims=True)
    vectors = clustered_vectors(n, 32, clusters=10, spread=1.5, seed=22)
    index = populated_index()
    controller = make_controller(target_rate=0.1)
    decisions = [
        controller.decide(p, LABELS, v, index, PLENTY) for p, v in zip(proba, vectors, strict=True)
    ]
    captured = np.array([d.captured for d in decisions])
    uncertainty = np.array([d.uncertainty for d in decisions])
    assert abs(captured.mean() - 0.1) < 0.02
    assert uncertainty[captured].mean() > uncertainty[~captured].mean() + 0.2
    np.testing.assert_allclose(uncertainty, margin_uncertainty(proba), atol=1e-9)
    assert {d.reason for d in decisions if d.captured} <= {"uncertain", "novel", "coverage"}
    assert {d.skipped_because for d in decisions if not d.captured} == {"below_threshold"}


def test_same_input_is_captured_at_most_once_once_queued() -> None:
    index = populated_index()
    controller = make_controller(random_rate=1.0)  # would capture everything otherwise
    vector = clustered_vectors(1, 32, seed=30)[0]
    unsure = np.array([0.3, 0.3, 0.2, 0.1, 0.1])
    captures = 0
    for item_id in range(10_000, 10_050):
        decision = controller.decide(unsure, LABELS, vector, index, PLENTY)
        if decision.captured:
            captures += 1
            assert controller.commit(decision)
            add_pending(index, item_id, vector)
        else:
            assert decision.skipped_because == "duplicate"
            assert decision.nearest_similarity == pytest.approx(1.0, abs=1e-5)
    assert captures == 1


def test_near_duplicate_of_a_labelled_sample_is_not_captured() -> None:
    index = VectorIndex(4)
    index.add([1], [[1.0, 0.0, 0.0, 0.0]], "labelled")
    controller = make_controller(random_rate=1.0, duplicate_similarity=0.98)
    near = [1.0, 0.1, 0.0, 0.0]  # cosine ~0.995
    far = [1.0, 0.5, 0.0, 0.0]  # cosine ~0.89
    assert controller.decide([0.5, 0.5], LABELS[:2], near, index, PLENTY).skipped_because == (
        "duplicate"
    )
    assert controller.decide([0.5, 0.5], LABELS[:2], far, index, PLENTY).captured


def test_hour_and_day_budgets_hold_and_reset_when_the_window_rolls() -> None:
    clock = FakeClock()
    controller = make_controller(clock, random_rate=1.0, max_per_hour=5, max_per_day=8)
    index = VectorIndex(16)
    vectors = iter(clustered_vectors(100, 16, clusters=100, spread=3.0, seed=40))

    def burst(count: int) -> list[str | None]:
        outcomes = []
        for _ in range(count):
            decision = controller.decide([0.5, 0.5], LABELS[:2], next(vectors), index, PLENTY)
            if decision.captured:
                controller.commit(decision)
            outcomes.append(decision.reason or decision.skipped_because)
        return outcomes

    assert burst(7) == ["random"] * 5 + ["budget_hour"] * 2
    clock.now += 1800
    assert burst(1) == ["budget_hour"]
    clock.now += 1801  # the first five captures leave the hour window
    assert burst(4) == ["random"] * 3 + ["budget_day"]
    clock.now += 86_400 - 3601 + 1  # ... and the day window
    assert burst(2) == ["random"] * 2
    assert controller.status()["captures_last_day"] == 5  # 3 at t+3601 are still in the day


def test_a_capture_the_caller_failed_to_persist_does_not_consume_budget() -> None:
    controller = make_controller(random_rate=1.0, max_per_hour=1, max_per_day=1)
    index = VectorIndex(4)
    first = controller.decide([0.5, 0.5], LABELS[:2], [1, 0, 0, 0], index, PLENTY)
    assert first.captured and first.reservation is not None
    pending = controller.decide([0.5, 0.5], LABELS[:2], [0, 1, 0, 0], index, PLENTY)
    assert pending.skipped_because == "budget_day"  # the open reservation holds the slot
    assert controller.rollback(first)
    retry = controller.decide([0.5, 0.5], LABELS[:2], [0, 0, 1, 0], index, PLENTY)
    assert retry.captured and controller.commit(retry)
    assert not controller.commit(retry) and not controller.rollback(retry)
    assert not controller.commit(pending)
    assert controller.status()["captures_last_day"] == 1


def test_random_slice_has_its_rate_and_unbiased_uncertainty() -> None:
    n, rate = 4000, 0.05
    proba = random_probabilities(n, 5, seed=50)
    vectors = clustered_vectors(n, 16, clusters=20, spread=2.0, seed=51)
    controller = make_controller(random_rate=rate, target_rate=0.01, seed=52)
    index = VectorIndex(16)
    decisions = [
        controller.decide(p, LABELS, v, index, PLENTY) for p, v in zip(proba, vectors, strict=True)
    ]
    in_slice = np.array([d.reason == "random" for d in decisions])
    expected, spread = n * rate, np.sqrt(n * rate * (1 - rate))
    assert abs(in_slice.sum() - expected) < 4 * spread
    uncertainty = np.array([d.uncertainty for d in decisions])
    standard_error = uncertainty.std() / np.sqrt(in_slice.sum())
    assert abs(uncertainty[in_slice].mean() - uncertainty.mean()) < 4 * standard_error
    informative = np.array([d.reason in ("uncertain", "novel") for d in decisions])
    assert uncertainty[informative].mean() > uncertainty[in_slice].mean() + 0.2


def test_rare_predicted_classes_are_boosted() -> None:
    n = 3000
    proba = random_probabilities(n, 2, seed=60)
    vectors = clustered_vectors(n, 16, clusters=20, spread=2.0, seed=61)
    counts = {"common": 500, "rare": 2}
    controller = make_controller(
        target_rate=0.1, rare_class_min_samples=10, rare_class_boost=0.6, coverage_clusters=0
    )
    index = VectorIndex(16)
    decisions = [
        controller.decide(p, ["common", "rare"], v, index, counts)
        for p, v in zip(proba, vectors, strict=True)
    ]
    rate = {
        label: np.mean([d.captured for d in decisions if d.predicted_label == label])
        for label in counts
    }
    assert rate["rare"] > 2 * rate["common"]
    assert any(d.reason == "rare_class" for d in decisions)

    unboosted = make_controller(
        target_rate=0.1, rare_class_min_samples=0, rare_class_boost=0.6, coverage_clusters=0
    )
    reasons = {
        unboosted.decide(p, ["common", "rare"], v, index, counts).reason
        for p, v in zip(proba[:500], vectors[:500], strict=True)
    }
    assert "rare_class" not in reasons


def test_reasons_before_history_use_the_initial_threshold() -> None:
    # Empty index: novelty is 1. With novelty_weight 0.5 and initial threshold 0.5 (and no
    # coverage balancing, which would reweigh the second input's region):
    controller = make_controller(novelty_weight=0.5, initial_threshold=0.5, coverage_clusters=0)
    index = VectorIndex(4)
    unsure = controller.decide([0.5, 0.5], ["a", "b"], [1, 0, 0, 0], index, PLENTY)
    assert (unsure.reason, unsure.score, unsure.threshold) == ("uncertain", 1.0, 0.5)
    lifted = controller.decide([0.8, 0.2], ["a", "b"], [1, 0, 0, 0], index, PLENTY)
    assert lifted.reason == "novel" and lifted.uncertainty == pytest.approx(0.4)
    assert lifted.score == pytest.approx(0.7) and lifted.nearest_similarity is None
    index.add([1], [[1, 0, 0, 0]], "labelled")
    sure = controller.decide([0.99, 0.01], ["a", "b"], [0, 1, 0, 0], index, PLENTY)
    assert not sure.captured and sure.skipped_because == "below_threshold"
    assert sure.reason is None and sure.reservation is None
    assert sure.nearest_similarity == pytest.approx(0.0, abs=1e-6)
    assert set(sure.to_dict()) == {
        "captured",
        "reason",
        "score",
        "uncertainty",
        "novelty",
        "nearest_similarity",
        "threshold",
        "skipped_because",
        "predicted_label",
        "region",
        "coverage_weight",
        "calibrated_novelty",
        "is_novel",
    }


def test_calibrated_novelty_over_the_threshold_is_captured_novel() -> None:
    controller = make_controller(novelty_threshold=0.95, initial_threshold=0.99, random_rate=0.0)
    index = VectorIndex(4)
    index.add([1], [[1, 0, 0, 0]], "labelled")
    sure = [0.99, 0.01]
    novel = controller.decide(
        sure, ["a", "b"], [0, 1, 0, 0], index, PLENTY, calibrated_novelty=0.97
    )
    assert novel.captured and novel.reason == "novel" and novel.is_novel
    assert novel.calibrated_novelty == 0.97 and novel.to_dict()["is_novel"]
    usual = controller.decide(sure, ["a", "b"], [0, 0, 1, 0], index, PLENTY, calibrated_novelty=0.5)
    assert not usual.captured and not usual.is_novel
    unknown = controller.decide(sure, ["a", "b"], [0, 0, 0, 1], index, PLENTY)
    assert not unknown.captured and unknown.calibrated_novelty is None
    # near-duplicates are never captured, however novel
    twin = controller.decide(sure, ["a", "b"], [1, 0, 0, 0], index, PLENTY, calibrated_novelty=1.0)
    assert not twin.captured and twin.skipped_because == "duplicate" and twin.is_novel


def test_strategy_from_policy_and_policy_update_keeps_history() -> None:
    controller = make_controller(strategy="entropy", initial_threshold=0.99)
    index = VectorIndex(4)
    decision = controller.decide([0.5, 0.25, 0.25], ["a", "b", "c"], [1, 0, 0, 0], index, PLENTY)
    expected = -(0.5 * np.log(0.5) + 0.5 * np.log(0.25)) / np.log(3)
    assert decision.uncertainty == pytest.approx(expected)
    for _ in range(60):
        controller.decide([0.5, 0.25, 0.25], ["a", "b", "c"], [1, 0, 0, 0], index, PLENTY)
    threshold_before = controller.status()["threshold"]
    controller.update_policy(CapturePolicy(strategy="margin", initial_threshold=0.99))
    assert controller.policy.strategy == "margin"
    assert controller.status()["scores_observed"] == 61
    assert controller.status()["threshold"] == pytest.approx(threshold_before)


def test_input_validation() -> None:
    controller = make_controller()
    index = VectorIndex(4)
    with pytest.raises(InvalidArray):
        controller.decide([0.5, 0.5], ["a"], [1, 0, 0, 0], index, PLENTY)
    with pytest.raises(InvalidArray):
        controller.decide([], [], [1, 0, 0, 0], index, PLENTY)


def test_concurrent_decisions_never_exceed_the_budget() -> None:
    controller = make_controller(random_rate=1.0, max_per_hour=40, max_per_day=40)
    index = VectorIndex(16)
    vectors = clustered_vectors(800, 16, clusters=800, spread=3.0, seed=70)
    captured: list[int] = []
    errors: list[BaseException] = []

    def worker(rows: range) -> None:
        try:
            for row in rows:
                decision = controller.decide([0.5, 0.5], ["a", "b"], vectors[row], index, PLENTY)
                if decision.captured and controller.commit(decision):
                    captured.append(row)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(range(i, 800, 4),)) for i in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors
    assert len(captured) == 40


def test_a_capture_is_confirmed_against_the_captures_other_processes_persisted() -> None:
    clock = [1000.0]
    controller = CaptureController(
        CapturePolicy(random_rate=1.0, max_per_hour=2, max_per_day=10),
        clock=lambda: clock[0],
        rng=np.random.default_rng(0),
    )
    index = VectorIndex(4)
    first = controller.decide([0.5, 0.5], ["a", "b"], [1, 0, 0, 0], index, PLENTY)
    assert first.captured and controller.confirm(first, []) is None
    assert controller.commit(first)
    second = controller.decide([0.5, 0.5], ["a", "b"], [0, 1, 0, 0], index, PLENTY)
    assert second.captured  # as far as this process knows, one of two slots is used
    # the queue shows another process's capture too: the hour is full
    assert controller.confirm(second, [950.0, 1000.0]) == "budget_hour"
    assert not controller.commit(second)  # settled by confirm: nothing left to count
    assert controller.status()["captures_last_hour"] == 2
    third = controller.decide([0.5, 0.5], ["a", "b"], [0, 0, 1, 0], index, PLENTY)
    assert third.skipped_because == "budget_hour"  # known now without asking the queue
    with pytest.raises(ValueError, match="captured, unsettled"):
        controller.confirm(third, [])

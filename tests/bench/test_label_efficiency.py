"""B1 pieces: the offline pool-margin reference, the headline ratio, the ECE noise floor and the
catch rate a calibrated head promises."""

from __future__ import annotations

import numpy as np
import pytest

from bench.capture_sim import run_pool_margin
from bench.label_efficiency import (
    ece_if_calibrated,
    errors_expected_if_calibrated,
    headline_ratio,
)
from learner import Candidate, TrainResult, expected_calibration_error

LOGISTIC = [Candidate("logistic_regression", {"C": 10.0})]


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping classes of unit vectors in 8 dimensions."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, 8))
    labels = rng.integers(0, 3, n)
    vectors = centres[labels] + 1.2 * rng.standard_normal((n, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), np.asarray([f"c{i}" for i in labels])


def test_pool_margin_labels_the_least_certain_inputs_of_the_whole_pool() -> None:
    vectors, labels = blobs(400, seed=0)
    order = np.random.default_rng(1).permutation(len(labels))
    seen: list[tuple[int, TrainResult, np.ndarray]] = []
    run_pool_margin(
        vectors, labels, order, [20, 40], cold_start=10, seed=0, candidates=LOGISTIC,
        on_checkpoint=lambda count, result, labelled: seen.append((count, result, labelled)),
    )  # fmt: skip
    assert [count for count, _, _ in seen] == [20, 40]
    first_head, labelled_first = seen[0][1].head, seen[0][2]
    labelled_then = seen[1][2]
    assert len(set(labelled_then.tolist())) == 40 and set(labelled_first) <= set(labelled_then)
    assert set(order[:10].tolist()) <= set(labelled_first.tolist())  # same cold start as others
    # the second round took the 20 smallest margins under the first round's head
    rest = np.setdiff1d(np.arange(len(labels)), labelled_first)
    top_two = np.sort(first_head.predict_proba(vectors[rest]), axis=1)[:, -2:]
    margins = dict(zip(rest.tolist(), (top_two[:, 1] - top_two[:, 0]).tolist(), strict=True))
    picked = [margins[int(i)] for i in labelled_then[20:]]
    others = [m for i, m in margins.items() if i not in set(labelled_then.tolist())]
    assert max(picked) <= min(others)


def test_headline_ratio_interpolates_labels_to_reach_random_at_the_largest_budget() -> None:
    seeds = [
        {"curves": {"random": {100: 0.6, 200: 0.8}, "x": {100: 0.7, 200: 0.9}}},
        {"curves": {"random": {100: 0.6, 200: 0.8}, "x": {100: 0.8, 200: 0.85}}},
        {"curves": {"random": {100: 0.6, 200: 0.8}, "x": {100: 0.5, 200: 0.7}}},
    ]
    per_budget = {"random": {"200": {"mean": 0.8}}}
    found = headline_ratio(seeds, "x", per_budget, 200)
    assert found["per_seed"] == [pytest.approx(0.75), 0.5, None]
    assert found["seeds_not_reaching"] == 1
    assert found["mean"] is None and found["max"] is None and found["min"] == 0.5
    # mean curve: 0.6667 at 100, 0.8167 at 200 -> reaches 0.8 at 100 + 100 * 0.1333 / 0.15
    assert abs(found["of_mean_curves"] - (100 + 100 * (0.8 - 2 / 3) / 0.15) / 200) < 1e-9


def test_ece_noise_floor_matches_a_calibrated_head_and_shrinks_with_more_inputs() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4000, 5)) * 2.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = (rng.random((4000, 1)) > np.cumsum(proba, axis=1)).sum(axis=1)  # drawn from proba
    floor_small, floor_large = ece_if_calibrated(proba[:500]), ece_if_calibrated(proba)
    assert floor_large < floor_small < 0.1
    assert abs(expected_calibration_error(proba, truth, 15) - floor_large) < 0.015
    overconfident = proba**3 / (proba**3).sum(axis=1, keepdims=True)
    assert expected_calibration_error(overconfident, truth, 15) > 3 * floor_large


def test_a_calibrated_head_catches_what_its_confidences_promise_and_no_more() -> None:
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((20000, 5)) * 2.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = (rng.random((20000, 1)) > np.cumsum(proba, axis=1)).sum(axis=1)  # drawn from proba
    wrong = proba.argmax(axis=1) != truth
    count = 2000
    promised = errors_expected_if_calibrated(proba, count)
    least_confident = np.argsort(proba.max(axis=1))[:count]
    caught = wrong[least_confident].sum() / wrong.sum()
    assert abs(caught - promised) < 0.01
    shuffled = rng.permutation(len(proba))[:count]  # any other ranking expects less
    assert wrong[shuffled].sum() / wrong.sum() < promised - 0.05  # ~0.10 vs ~0.18
    assert errors_expected_if_calibrated(proba, len(proba)) == pytest.approx(1.0)
    assert errors_expected_if_calibrated(np.eye(3), 2) == 0.0  # certain everywhere: no errors

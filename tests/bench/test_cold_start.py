"""B5 pieces: a streamed run from no labels, offline TypiClust, a rule's precision and recall, and
the Performance page rows built from a result."""

from __future__ import annotations

import numpy as np

from bench.capture_sim import run_capture
from bench.cold_start import BUDGETS, aggregate, rule_captures, typiclust_offline
from bench.data import BenchmarkData, Split
from bench.report import b5_rows
from capture import CapturePolicy
from learner import Candidate, TrainResult

LOGISTIC = [Candidate("logistic_regression", {"C": 10.0})]


def blobs(
    n: int, seed: int, classes: int = 4, spread: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Separated classes of unit vectors in 16 dimensions."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    vectors = np.eye(16)[labels] + spread * rng.standard_normal((n, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), np.asarray([f"c{i}" for i in labels])


def test_a_stream_from_no_labels_takes_its_first_labels_from_cold_start_capture() -> None:
    vectors, labels = blobs(600, seed=0)
    order = np.random.default_rng(1).permutation(len(labels))
    seen: list[tuple[int, TrainResult | None, np.ndarray]] = []
    reasons: dict[int, dict[str, int]] = {}
    run_capture(
        vectors, labels, order, CapturePolicy(random_rate=0.0), cold_start=0,
        checkpoints=[8, 16], seed=0, items_per_hour=360.0, candidates=LOGISTIC,
        on_checkpoint=lambda count, result, labelled: seen.append((count, result, labelled)),
        reasons_at=reasons,
    )  # fmt: skip
    assert [count for count, _, _ in seen] == [8, 16]
    assert reasons[8] == {"cold_start": 8}  # no head yet: every first label is a cold start
    first = seen[0][2]
    assert not set(first.tolist()) & set(order[:100].tolist())  # none while warming up
    assert len(set(labels[first])) >= 3  # they cover the classes
    assert seen[1][1] is not None and "cold_start" not in set(reasons[16]) - set(reasons[8])


def test_refits_by_a_worker_with_no_lag_capture_what_inline_refits_capture() -> None:
    """The service's scheduled refits (refit_lag 0: landing before the next input) take the same
    labels as the library's inline ones: the k-means seed and the reservoir copy are the same."""
    vectors, labels = blobs(600, seed=0)
    order = np.random.default_rng(1).permutation(len(labels))
    taken: dict[int | None, list[np.ndarray]] = {}
    for lag in (None, 0, 25):
        taken[lag] = []
        run_capture(
            vectors, labels, order, CapturePolicy(random_rate=0.0), cold_start=0,
            checkpoints=[8, 16], seed=0, items_per_hour=360.0, candidates=LOGISTIC,
            on_checkpoint=lambda count, result, labelled, lag=lag: taken[lag].append(labelled),
            refit_lag=lag,
        )  # fmt: skip
    assert all(np.array_equal(a, b) for a, b in zip(taken[None], taken[0], strict=True))
    assert not np.array_equal(taken[None][0], taken[25][0])  # a late refit does change picks


def test_offline_typiclust_picks_one_typical_member_per_cluster() -> None:
    vectors, labels = blobs(400, seed=2)
    picks = typiclust_offline(vectors, 4, seed=0)
    assert len(picks) == 4 and len(set(labels[picks])) == 4


def test_a_rule_captures_its_class() -> None:
    vectors, labels = blobs(400, seed=3, spread=0.15)  # ~0.83 cosine to a class's centroid
    split = Split(vectors, labels, np.arange(len(labels)))
    data = BenchmarkData(pool=split, val=split, test=split, backbone="synthetic")
    found = rule_captures(data, split, "c1", seed=0, similarity=0.7)
    assert found["precision"] >= 0.95 and found["recall"] >= 0.8


def test_rows_report_each_budget_and_the_rule() -> None:
    curves = {
        name: {b: base + b / 1000 for b in BUDGETS}
        for name, base in (("random", 0.4), ("winnow", 0.5), ("typiclust_offline", 0.55))
    }
    summary = aggregate([{"curves": curves}, {"curves": curves}])
    assert summary["targets"]["5pt_above_random_at_10_and_20"]
    report = {
        "summary": summary,
        "config": {"seeds": [0, 1]},
        "data": {"pool": 600},
        "rules": {
            "examples": 5,
            "similarity": 0.85,
            "precision": {"mean": 0.9, "std": 0.1},
            "recall": {"mean": 0.4, "std": 0.1},
            "targets": {"precision_at_least_0.9": True, "recall_at_least_0.5": False},
        },
    }
    rows = b5_rows(report)
    assert len(rows) == len(BUDGETS) + 1
    assert rows[0][1].startswith("51.0 ± 0.0% vs 41.0 ± 0.0% (+10.0 pt") and rows[0][3] == "pass"
    assert rows[-1][3] == "**fail**"

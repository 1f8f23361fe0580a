"""The mislabel-suspect detector finds planted label flips and leaves clean labels alone."""

from __future__ import annotations

import numpy as np
import pytest

from learner import train_head
from learner.label_issues import find_label_issues, knn_label_distribution
from tests.learner.conftest import make_clusters

COUNTS = {f"class{i}": 80 for i in range(5)}


def _flipped(labels: list[str], rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    names = np.asarray(labels, dtype=object)
    classes = sorted(set(labels))
    chosen = rng.choice(len(names), size=int(rate * len(names)), replace=False)
    noisy = names.copy()
    for i in chosen:
        noisy[i] = rng.choice([c for c in classes if c != names[i]])
    return noisy, noisy != names


def _issues(vectors: np.ndarray, labels: np.ndarray, **method: object):
    result = train_head(vectors, labels)
    given = np.searchsorted(np.asarray(result.labels), labels)
    return find_label_issues(
        result.oof_proba, given, vectors=vectors, temperature=result.temperature, **method
    )


@pytest.mark.parametrize("knn_weight", [0.0, 0.5])
def test_planted_flips_are_found_with_few_false_alarms(knn_weight: float) -> None:
    vectors, labels = make_clusters(COUNTS, dim=32, noise=1.0, seed=3)
    noisy, flipped = _flipped(labels, 0.1, seed=3)

    issues = _issues(vectors, noisy, knn_weight=knn_weight)

    hits = int(np.sum(issues.flagged & flipped))
    assert hits / flipped.sum() >= 0.8  # recall
    assert hits / issues.flagged.sum() >= 0.8  # precision
    truth = np.searchsorted(sorted(COUNTS), np.asarray(labels, dtype=object))
    assert (
        np.mean(issues.suggested[issues.flagged & flipped] == truth[issues.flagged & flipped]) > 0.9
    )
    ranked = issues.ranked_suspects()
    assert np.all(np.diff(issues.quality[ranked]) >= 0)  # most suspicious first
    assert np.nanmax(issues.quality[issues.flagged]) < np.nanmedian(issues.quality)


def test_clean_labels_are_rarely_flagged() -> None:
    vectors, labels = make_clusters(COUNTS, dim=32, noise=1.0, seed=4)
    issues = _issues(vectors, np.asarray(labels, dtype=object))
    assert issues.flagged_share <= 0.02
    assert np.all((issues.quality >= 0) & (issues.quality <= 1))


def test_unscored_rows_get_no_verdict() -> None:
    proba = np.array([[0.9, 0.1], [np.nan, np.nan], [0.2, 0.8], [0.1, 0.9], [0.8, 0.2]])
    issues = find_label_issues(proba, np.array([1, 0, 1, 1, 0]))
    assert issues.flagged.tolist() == [True, False, False, False, False]
    assert np.isnan(issues.quality[1]) and issues.suggested[1] == -1
    assert issues.suggested[0] == 0
    assert issues.quality[0] == pytest.approx((0.1 - 0.75 * 0.9 + 0.75) / 1.75)


def test_knn_label_distribution_leaves_each_sample_out() -> None:
    vectors = np.eye(3, dtype=np.float32)[[0, 0, 1, 1]]
    shares = knn_label_distribution(vectors, np.array([0, 1, 1, 1]), 2, k=1)
    # each sample's only neighbour is its twin, never itself
    assert shares[:, 1].round(3).tolist() == [1.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("proba", "given", "weight"),
    [
        (np.ones((3, 2)) / 2, np.array([0, 1]), 0.5),
        (np.ones((2, 2)) / 2, np.array([0, 2]), 0.5),
        (np.ones((2, 2)) / 2, np.array([0, 1]), 1.5),
    ],
)
def test_bad_inputs_are_rejected(proba: np.ndarray, given: np.ndarray, weight: float) -> None:
    with pytest.raises(ValueError):
        find_label_issues(proba, given, knn_weight=weight)

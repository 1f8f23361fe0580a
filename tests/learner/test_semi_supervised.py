"""The semi-supervised candidate: label spreading over traffic, then logistic regression."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from learner import (
    Candidate,
    DataShape,
    SpreadThenLogistic,
    default_candidates,
    train_head,
)
from tests.learner.conftest import make_clusters

EIGHT = {f"class{i}": 150 for i in range(8)}


def clusters(noise: float, sample_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Eight overlapping clusters on the unit sphere (64-d): two labels per class place a
    linear head's boundaries badly, the unlabelled points show where the clusters are."""
    X, y = make_clusters(EIGHT, dim=64, noise=noise, seed=0, sample_seed=sample_seed)
    return X, np.asarray(y, dtype=object)


def few_labels(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.choice(np.flatnonzero(y == label), per_class, replace=False) for label in np.unique(y)]
    )


def test_traffic_moves_the_boundaries_of_a_few_labels() -> None:
    X, y = clusters(1.5)
    test_X, test_y = clusters(1.5, sample_seed=9)
    gains = []
    for seed in range(3):
        labelled = few_labels(y, 2, seed)
        traffic = np.delete(X, labelled, axis=0)
        plain = LogisticRegression(C=10.0).fit(X[labelled], y[labelled])
        spread = SpreadThenLogistic(traffic, C=10.0).fit(X[labelled], y[labelled])
        assert spread.pseudo_labelled_ > 900  # of 1,184 traffic vectors
        gains.append(np.mean(spread.predict(test_X) == test_y) - plain.score(test_X, test_y))
    assert np.mean(gains) > 0.01, gains  # measured: +3.1 points


def test_a_fitted_head_keeps_no_traffic() -> None:
    X, y = clusters(1.5)
    labelled = few_labels(y, 5, 0)
    head = SpreadThenLogistic(X, C=1.0).fit(X[labelled], y[labelled])
    assert len(pickle.dumps(head)) < 20_000  # the 1,200 traffic rows alone would be 307 KB
    assert list(head.classes_) == sorted(EIGHT)
    assert head.predict_proba(X[:3]).shape == (3, 8)


def test_traffic_that_repeats_a_labelled_sample_is_not_pseudo_labelled() -> None:
    X, y = clusters(1.5)
    labelled = few_labels(y, 5, 0)
    head = SpreadThenLogistic(X[labelled].copy()).fit(X[labelled], y[labelled])
    assert head.pseudo_labelled_ == 0
    with pytest.raises(ValueError, match="dimension"):
        SpreadThenLogistic(np.ones((5, 4), np.float32)).fit(X[labelled], y[labelled])


def test_the_family_is_proposed_only_with_enough_traffic() -> None:
    shape = DataShape(n_train=40, min_class_count=10, n_classes=4, n_features=3)
    traffic = np.ones((100, 3), np.float32)

    def names(unlabeled: np.ndarray | None) -> set[str]:
        return {c.name for c in default_candidates(shape, unlabeled=unlabeled)}

    assert "label_spreading" not in names(None)
    assert "label_spreading" not in names(traffic[:10])  # below the least traffic it needs
    assert "label_spreading" in names(traffic)
    big = DataShape(n_train=1000, min_class_count=100, n_classes=4, n_features=3)
    assert "label_spreading" not in {c.name for c in default_candidates(big, unlabeled=traffic)}
    with pytest.raises(ValueError, match="unlabelled traffic"):
        Candidate("label_spreading", {"C": 1.0}).build()


def test_selection_scores_only_labelled_samples() -> None:
    X, y = clusters(1.5)
    labelled = few_labels(y, 4, 0)
    traffic = np.delete(X, labelled, axis=0)
    result = train_head(X[labelled], y[labelled], unlabeled=traffic)
    assert result.n_samples == 32 and len(result.oof_pred) == 32
    names = {score.candidate.name for score in result.cv_scores}
    assert {"label_spreading", "logistic_regression"} <= names
    best = result.cv_scores[0]
    assert best.candidate.name == result.candidate_name
    assert len(best.fold_accuracies) == result.n_folds

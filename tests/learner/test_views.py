"""Training with augmented views: views train, never score, and never leak a held-out image."""

from __future__ import annotations

import numpy as np
import pytest

from learner import (
    UNSCORED_FOLD,
    Candidate,
    NotEnoughData,
    assign_folds,
    cross_validated_predictions,
    train_head,
)
from tests.learner.conftest import make_clusters


def with_views(
    X: np.ndarray, y: list[str], k: int, *, jitter: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Each row followed by ``k`` near copies (its views): ``(X, y, groups, is_view)``."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(X, 1 + k, axis=0)
    rows = rows + jitter * rng.normal(size=rows.shape) / np.sqrt(X.shape[1])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    labels = [label for label in y for _ in range(1 + k)]
    groups = np.repeat(np.arange(len(y)), 1 + k)
    is_view = np.tile(np.arange(1 + k) > 0, len(y))
    return rows.astype(np.float32), labels, groups, is_view


class RecordingClassifier:
    """Predicts the first label and remembers the rows (column 0 holds a row id) it was fit on."""

    fitted_on: list[set[int]] = []

    def fit(self, X: np.ndarray, y: np.ndarray) -> RecordingClassifier:
        self.classes_ = np.unique(y)
        RecordingClassifier.fitted_on.append({int(v) for v in X[:, 0]})
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        proba = np.zeros((len(X), len(self.classes_)))
        proba[:, 0] = 1.0
        return proba


def test_views_get_no_fold_and_leave_the_originals_folds_unchanged() -> None:
    _, y = make_clusters({"a": 6, "b": 4, "c": 1}, seed=3)
    _, y_views, _, is_view = with_views(np.ones((len(y), 2)), y, 3)

    plain = assign_folds(y, seed=7)
    folds = assign_folds(y_views, seed=7, is_view=is_view)

    assert (folds[is_view] == UNSCORED_FOLD).all()
    np.testing.assert_array_equal(folds[~is_view], plain)
    # a label with one original stays unscored however many views it has
    assert (folds[np.asarray(y_views) == "c"] == UNSCORED_FOLD).all()


def test_a_fold_never_trains_on_the_views_of_its_held_out_images() -> None:
    _, y = make_clusters({"a": 6, "b": 6}, seed=1)
    _, y_views, groups, is_view = with_views(np.ones((len(y), 2)), y, 2)
    X = np.arange(len(y_views), dtype=np.float64)[:, None]  # column 0: the row id
    folds = assign_folds(y_views, seed=0, is_view=is_view)
    RecordingClassifier.fitted_on = []

    pred, _ = cross_validated_predictions(RecordingClassifier, X, y_views, folds, groups=groups)

    assert len(RecordingClassifier.fitted_on) == int(folds.max()) + 1
    for fold, trained in enumerate(RecordingClassifier.fitted_on):
        held_out = set(np.flatnonzero(np.isin(groups, groups[folds == fold])).tolist())
        assert trained == set(range(len(y_views))) - held_out
    assert all(p is None for p in pred[is_view])
    assert all(p is not None for p in pred[~is_view])


def test_views_that_repeat_their_image_cannot_inflate_the_cv_score() -> None:
    # labels carry no signal: honest CV is near chance; views of a held-out image in training
    # would let one-nearest-neighbour find its own copy and score ~100%
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 16)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = [f"class{i}" for i in rng.integers(0, 3, size=60)]
    X_views, y_views, groups, is_view = with_views(X, y, 3, jitter=0.01)
    one_nn = [Candidate("knn", {"n_neighbors": 1})]

    leaky = train_head(X_views, y_views, candidates=one_nn)
    grouped = train_head(X_views, y_views, candidates=one_nn, groups=groups, is_view=is_view)

    assert leaky.metrics["accuracy"] > 0.9
    assert grouped.metrics["accuracy"] < 0.6
    assert grouped.oof_pred[is_view].tolist() == [None] * int(is_view.sum())
    assert grouped.n_samples == len(y_views)
    assert grouped.groups is not None  # the same partition, under ids of its own
    assert len(set(zip(grouped.groups, groups, strict=True))) == len(y)


def test_views_of_separable_clusters_train_a_good_head() -> None:
    X, y = make_clusters({f"class{i}": 4 for i in range(4)}, dim=32, seed=2)
    X_views, y_views, groups, is_view = with_views(X, y, 2, jitter=0.2)
    traffic, _ = make_clusters({f"class{i}": 20 for i in range(4)}, dim=32, seed=2, sample_seed=5)

    result = train_head(X_views, y_views, groups=groups, is_view=is_view, unlabeled=traffic)

    assert result.metrics["accuracy"] >= 0.9
    assert result.n_folds == 4  # the originals' folds: four images of each label
    assert "label_spreading" in {score.candidate.name for score in result.cv_scores}
    X_new, y_new = make_clusters({f"class{i}": 4 for i in range(4)}, dim=32, seed=2, sample_seed=9)
    assert np.mean(result.head.predict(X_new) == np.asarray(y_new)) >= 0.9


def test_views_alone_cannot_make_a_label_scorable_and_bad_arguments_are_refused() -> None:
    X, y = make_clusters({"a": 1, "b": 1}, seed=0)
    X_views, y_views, groups, is_view = with_views(X, y, 4, jitter=0.1)
    with pytest.raises(NotEnoughData):
        train_head(X_views, y_views, groups=groups, is_view=is_view)
    X, y = make_clusters({"a": 3, "b": 3}, seed=0)
    X_views, y_views, groups, is_view = with_views(X, y, 1)
    with pytest.raises(ValueError, match="needs groups"):
        train_head(X_views, y_views, is_view=is_view)
    with pytest.raises(ValueError, match="groups must have shape"):
        train_head(X_views, y_views, groups=groups[:-1], is_view=is_view)
    with pytest.raises(ValueError, match="is_view must have shape"):
        train_head(X_views, y_views, groups=groups, is_view=is_view[:-1])

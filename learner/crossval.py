"""Cross-validation folds and out-of-fold predictions shared by selection and champion checks.

Folds are stratified and their number adapts to the rarest label. Labels with a single sample
cannot be held out without vanishing from training, so they never get a test fold
(``UNSCORED_FOLD``): they are in every training split but never scored.

Augmented views of a labelled image (see :mod:`embeddings.augment`) come with ``groups`` (the
original's id on every row of it and its views) and ``is_view``: folds are assigned to originals
only, views get ``UNSCORED_FOLD`` (trained on, never scored), and a fold's training leaves out
every row of a group it holds out, so a held-out image is never graded by a model fitted on its
own views.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from learner.errors import NotEnoughData
from learner.heads import Candidate, Classifier

UNSCORED_FOLD = -1
"""Fold index of samples that are always trained on and never scored (single-sample labels)."""

EstimatorFactory = Candidate | Callable[[], Classifier]
"""What can be cross-validated: a :class:`Candidate` or a callable returning a new estimator."""

LabelSequence = Sequence[str] | np.ndarray
"""Labels per sample: a list of strings or a 1-D array (values are converted with ``str``)."""


def assign_folds(
    y: LabelSequence,
    *,
    max_folds: int = 5,
    seed: int = 0,
    is_view: np.ndarray | Sequence[bool] | None = None,
) -> np.ndarray:
    """Stratified fold index per sample; the fold count adapts to the rarest scorable label.

    ``n_folds = max(2, min(max_folds, smallest count among labels with >= 2 samples))`` so every
    scored label appears in every test fold; single-sample labels get ``UNSCORED_FOLD``.

    Args:
        y: label per sample.
        max_folds: upper bound on the number of folds (at least 2).
        seed: shuffling seed, for reproducible folds.
        is_view: ``True`` for rows that are augmented views of another row: they get
            ``UNSCORED_FOLD`` and count for nothing, so the originals' folds are those the
            originals alone would get (pass the groups to :func:`cross_validated_predictions`).

    Raises:
        NotEnoughData: fewer than two labels, or no label with at least two samples.
    """
    all_labels = np.asarray([str(label) for label in y], dtype=object)
    views = _view_mask(is_view, len(all_labels))
    folds = np.full(len(all_labels), UNSCORED_FOLD, dtype=np.int64)
    folds[~views] = _original_folds(all_labels[~views], max_folds=max_folds, seed=seed)
    return folds


def _original_folds(labels: np.ndarray, *, max_folds: int, seed: int) -> np.ndarray:
    distinct, counts = np.unique(labels, return_counts=True)
    if len(distinct) < 2:
        raise NotEnoughData(
            f"training needs samples of at least 2 labels, got {len(distinct)} "
            f"({len(labels)} samples)"
        )
    scorable = distinct[counts >= 2]
    if len(scorable) == 0:
        raise NotEnoughData(
            "cross-validation needs at least one label with 2 or more samples; "
            "every label has a single sample"
        )
    n_folds = max(2, min(max_folds, int(counts[counts >= 2].min())))
    folds = np.full(len(labels), UNSCORED_FOLD, dtype=np.int64)
    scored_idx = np.flatnonzero(np.isin(labels, scorable))
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(splitter.split(scored_idx, labels[scored_idx])):
        folds[scored_idx[test]] = fold
    return folds


def _view_mask(is_view: np.ndarray | Sequence[bool] | None, n_samples: int) -> np.ndarray:
    if is_view is None:
        return np.zeros(n_samples, dtype=bool)
    mask = np.asarray(is_view, dtype=bool)
    if mask.shape != (n_samples,):
        raise ValueError(f"is_view must have shape ({n_samples},), got {mask.shape}")
    return mask


def group_ids(groups: np.ndarray | Sequence[object] | None, n_samples: int) -> np.ndarray:
    """``groups`` as an integer array (one id per row), or each row its own group when ``None``."""
    if groups is None:
        return np.arange(n_samples)
    values = np.asarray(groups, dtype=object)
    if values.shape != (n_samples,):
        raise ValueError(f"groups must have shape ({n_samples},), got {values.shape}")
    return np.unique(values.astype(str), return_inverse=True)[1]


def training_rows(folds: np.ndarray, groups: np.ndarray, fold: int) -> np.ndarray:
    """Rows fold ``fold``'s model trains on: every row whose group has no row in that fold."""
    held_out_groups = np.unique(groups[folds == fold])
    return ~np.isin(groups, held_out_groups)


def cross_validated_predictions(
    candidate_or_estimator_factory: EstimatorFactory,
    X: np.ndarray,
    y: LabelSequence,
    folds: np.ndarray,
    *,
    blas_threads: int | None = 1,
    groups: np.ndarray | Sequence[object] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions of one model on given folds (e.g. a champion on new folds).

    For each fold ``f`` a fresh estimator is fitted on every sample whose fold is not ``f``
    (``UNSCORED_FOLD`` samples are always trained on) and predicts the samples of fold ``f``;
    with ``groups``, rows sharing a group with a sample of fold ``f`` are left out of its
    training too (an image's augmented views, see :func:`assign_folds`).

    Args:
        candidate_or_estimator_factory: a :class:`Candidate` or a no-argument callable returning
            an unfitted scikit-learn style classifier.
        X: (n_samples, dim) embeddings.
        y: label per sample.
        folds: (n_samples,) fold index per sample, as from :func:`assign_folds`.
        blas_threads: BLAS threads while fitting (see :func:`blas_thread_limit`).
        groups: one id per row, shared by an image and its views; ``None``: every row alone.

    Returns:
        ``(pred, proba)``: ``pred`` is an object array of predicted labels (``None`` where
        unscored); ``proba`` is (n_samples, n_labels) with columns in sorted label order (labels
        a fold's model never saw get 0) and NaN rows where unscored.
    """
    build = (
        candidate_or_estimator_factory.build
        if isinstance(candidate_or_estimator_factory, Candidate)
        else candidate_or_estimator_factory
    )
    features, labels = validated_training_data(X, y)
    fold_ids = np.asarray(folds, dtype=np.int64)
    if fold_ids.shape != (len(labels),):
        raise ValueError(f"folds must have shape ({len(labels)},), got {fold_ids.shape}")
    group_of = group_ids(groups, len(labels))
    label_order = np.unique(labels)
    column_of = {label: i for i, label in enumerate(label_order)}
    proba = np.full((len(labels), len(label_order)), np.nan)
    with blas_thread_limit(blas_threads):
        for fold in np.unique(fold_ids[fold_ids != UNSCORED_FOLD]):
            train, test = training_rows(fold_ids, group_of, fold), fold_ids == fold
            estimator = build()
            estimator.fit(features[train], labels[train])
            fold_proba = np.zeros((int(test.sum()), len(label_order)))
            columns = [column_of[str(label)] for label in estimator.classes_]
            fold_proba[:, columns] = estimator.predict_proba(features[test])
            proba[test] = fold_proba
    pred = np.full(len(labels), None, dtype=object)
    scored = fold_ids != UNSCORED_FOLD
    pred[scored] = label_order[np.argmax(proba[scored], axis=1)]
    return pred, proba


def validated_training_data(X: np.ndarray, y: LabelSequence) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(X, y)`` as arrays (labels as ``str``) after checking shapes and finiteness."""
    features = np.asarray(X)
    labels = np.asarray([str(label) for label in y], dtype=object)
    if features.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, dim), got shape {features.shape}")
    if len(features) != len(labels):
        raise ValueError(f"X has {len(features)} rows but y has {len(labels)} labels")
    if not np.isfinite(features).all():
        raise ValueError("X contains NaN or infinite values")
    return features, labels


@contextlib.contextmanager
def blas_thread_limit(threads: int | None) -> Iterator[None]:
    """Cap BLAS threads (OpenBLAS/MKL) for the duration of a training run.

    Head fits are many small matrix products (n x dim by dim x labels). Measured on 2 shared
    cores, 10k x 512 model selection took ~8 s with one BLAS thread and 30-55 s with two, because
    OpenBLAS workers spin-wait whenever the other core is busy (serving, other jobs). One thread
    also leaves a core for invokes. The limit is process-wide while it lasts (threadpoolctl has no
    per-thread limit), which only affects speed elsewhere, never results.

    Args:
        threads: the cap; ``None`` changes nothing.
    """
    if threads is None:
        yield
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield

"""Cross-validated model selection: pick the best head for a function's labelled embeddings.

Every candidate is scored on the *same* stratified folds; the folds are returned with the result so
the retrain scheduler can evaluate the deployed champion on exactly those folds before deciding
to replace it. The winner is refitted on every sample and wrapped with a temperature fitted on its
out-of-fold probabilities (see :mod:`learner.calibration`).

Labels with a single sample cannot be held out without vanishing from training, so they never get
a test fold (``UNSCORED_FOLD``): they are in every training split and in the final refit, but CV
scores and metrics are computed on the other samples only. ``TrainResult.unscored_labels`` says
which labels that concerns.

Augmented views of labelled images (``groups`` and ``is_view``) are trained on in every split
that holds their image and in the final refit, but never scored, and never trained on while
their image is held out (see :mod:`learner.crossval`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from learner.calibration import (
    TemperatureScaledHead,
    apply_temperature,
    fit_temperature,
    temperature_nll,
)
from learner.crossval import (
    UNSCORED_FOLD,
    LabelSequence,
    assign_folds,
    blas_thread_limit,
    cross_validated_predictions,
    group_ids,
    training_rows,
    validated_training_data,
)
from learner.heads import Candidate, DataShape, default_candidates, with_traffic
from learner.metrics import classification_metrics, expected_calibration_error


@dataclass(frozen=True)
class CandidateScore:
    """How one candidate did in cross-validation.

    Attributes:
        candidate: the candidate that was scored.
        accuracy: out-of-fold accuracy over all scored samples.
        log_loss: out-of-fold negative log-likelihood after its own temperature scaling (so
            families compare fairly even though their raw calibration differs).
        fold_accuracies: accuracy on each test fold, in fold order.
        seconds: wall time spent fitting and predicting all folds.
    """

    candidate: Candidate
    accuracy: float
    log_loss: float
    fold_accuracies: tuple[float, ...]
    seconds: float

    def summary(self) -> dict[str, Any]:
        """JSON-safe description for model history and the API."""
        return {
            "candidate": self.candidate.key,
            "name": self.candidate.name,
            "params": dict(self.candidate.params),
            "accuracy": self.accuracy,
            "log_loss": self.log_loss,
            "fold_accuracies": list(self.fold_accuracies),
            "seconds": self.seconds,
        }


@dataclass
class TrainResult:
    """Everything :func:`train_head` learned, for deploying, comparing and explaining a model.

    Attributes:
        head: the served head: the chosen estimator refitted on all samples, temperature-scaled.
        candidate: the chosen candidate (``candidate.name`` and ``candidate.params``).
        temperature: temperature fitted on the chosen candidate's out-of-fold probabilities.
        cv_scores: every candidate's CV score, best first.
        oof_pred: (n_samples,) out-of-fold predicted label of the chosen candidate; ``None`` for
            unscored samples.
        oof_proba: (n_samples, n_labels) raw out-of-fold probabilities of the chosen candidate,
            columns in ``labels`` order; NaN rows for unscored samples.
        metrics: :func:`classification_metrics` of the out-of-fold predictions plus ``ece``
            (after cross-fitted temperature scaling), ``ece_uncalibrated`` and ``log_loss``.
        n_samples: number of training samples.
        labels: sorted distinct labels, the column order of probabilities.
        unscored_labels: labels with a single sample, trained on but excluded from CV scoring.
        n_folds: number of CV folds.
        folds: (n_samples,) test fold index of every sample, ``UNSCORED_FOLD`` for unscored ones.
        seed: the seed that shuffled the folds.
        train_seconds: wall time of the whole selection including the final refit.
        groups: (n_samples,) group id per row when trained with augmented views (pass them to
            :func:`cross_validated_predictions` with ``folds``), ``None`` otherwise.
    """

    head: TemperatureScaledHead
    candidate: Candidate
    temperature: float
    cv_scores: list[CandidateScore]
    oof_pred: np.ndarray
    oof_proba: np.ndarray
    metrics: dict[str, Any]
    n_samples: int
    labels: list[str]
    unscored_labels: list[str]
    n_folds: int
    folds: np.ndarray
    seed: int
    train_seconds: float
    groups: np.ndarray | None = None

    @property
    def candidate_name(self) -> str:
        """Head family of the chosen candidate, e.g. ``"logistic_regression"``."""
        return self.candidate.name

    @property
    def params(self) -> dict[str, Any]:
        """Parameters of the chosen candidate (a copy, JSON-safe)."""
        return dict(self.candidate.params)

    def summary(self) -> dict[str, Any]:
        """JSON-safe description (no arrays, no estimator) to store as model metadata."""
        return {
            "candidate": self.candidate.key,
            "candidate_name": self.candidate_name,
            "params": self.params,
            "temperature": self.temperature,
            "cv_scores": [score.summary() for score in self.cv_scores],
            "metrics": self.metrics,
            "n_samples": self.n_samples,
            "labels": list(self.labels),
            "unscored_labels": list(self.unscored_labels),
            "n_folds": self.n_folds,
            "seed": self.seed,
            "train_seconds": self.train_seconds,
        }


def train_head(
    X: np.ndarray,
    y: LabelSequence,
    *,
    candidates: Sequence[Candidate] | None = None,
    max_folds: int = 5,
    seed: int = 0,
    blas_threads: int | None = 1,
    text_prior: Any = None,
    unlabeled: np.ndarray | None = None,
    groups: np.ndarray | Sequence[object] | None = None,
    is_view: np.ndarray | Sequence[bool] | None = None,
) -> TrainResult:
    """Cross-validate candidate heads, pick the best and refit it on all samples.

    The best candidate has the highest out-of-fold accuracy; ties go to the lower
    temperature-scaled log-loss, then to the candidate listed first (the default grid lists
    simpler models first).

    Args:
        X: (n_samples, dim) L2-normalised embeddings.
        y: label per sample.
        candidates: candidates to compare; ``None`` uses :func:`default_candidates` for this data.
        max_folds: upper bound on the number of CV folds.
        seed: seed for the fold shuffle.
        blas_threads: BLAS threads while training (see :func:`blas_thread_limit`); ``None``
            leaves the process setting alone.
        text_prior: the labels' :class:`learner.few_shot.TextPrior` (backbones with a text
            tower): the default candidates then include the few-shot family that starts from it.
        unlabeled: ``(m, dim)`` unlabelled traffic vectors: the default candidates then include
            the semi-supervised family.
        groups: one id per row, shared by a labelled image and its augmented views.
        is_view: ``True`` for the rows that are augmented views (needs ``groups``): they are
            trained on but never scored, and the folds are those of the originals alone.

    Raises:
        NotEnoughData: fewer than two labels, or no label with at least two samples.
    """
    started = time.perf_counter()
    features, labels = validated_training_data(X, y)
    if is_view is not None and groups is None:
        raise ValueError("is_view needs groups: which image each view belongs to")
    folds = assign_folds(labels, max_folds=max_folds, seed=seed, is_view=is_view)
    group_of = None if groups is None else group_ids(groups, len(labels))
    shape = _data_shape(features, labels, folds, group_of)
    if candidates is None:
        candidates = default_candidates(shape, prior=text_prior, unlabeled=unlabeled)
    else:
        candidates = with_traffic(list(candidates), shape, unlabeled)
    if not candidates:
        raise ValueError("no candidates to train")
    label_order = np.unique(labels)
    scored = folds != UNSCORED_FOLD
    true_idx = np.searchsorted(label_order, labels[scored])

    with blas_thread_limit(blas_threads):
        scores, oof = _score_candidates(candidates, features, labels, folds, group_of)
        ranking = sorted(
            range(len(scores)),
            key=lambda i: (-round(scores[i].accuracy, 12), round(scores[i].log_loss, 12), i),
        )
        best = scores[ranking[0]].candidate
        oof_pred, oof_proba = oof[ranking[0]]
        estimator = best.build()
        estimator.fit(features, labels)
    temperature = fit_temperature(oof_proba[scored], true_idx)

    metrics = classification_metrics(labels[scored], oof_pred[scored], list(label_order))
    calibrated = _cross_fitted_calibration(oof_proba[scored], true_idx, folds[scored])
    metrics["ece"] = expected_calibration_error(calibrated, true_idx)
    metrics["ece_uncalibrated"] = expected_calibration_error(oof_proba[scored], true_idx)
    metrics["log_loss"] = temperature_nll(calibrated, true_idx, 1.0)
    return TrainResult(
        head=TemperatureScaledHead(estimator, temperature),
        candidate=best,
        temperature=temperature,
        cv_scores=[scores[i] for i in ranking],
        oof_pred=oof_pred,
        oof_proba=oof_proba,
        metrics=metrics,
        n_samples=len(labels),
        labels=[str(label) for label in label_order],
        unscored_labels=sorted({str(label) for label in labels[~scored]}),
        n_folds=int(folds.max()) + 1,
        folds=folds,
        seed=seed,
        train_seconds=time.perf_counter() - started,
        groups=group_of,
    )


def _score_candidates(
    candidates: Sequence[Candidate],
    features: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray,
    groups: np.ndarray | None,
) -> tuple[list[CandidateScore], list[tuple[np.ndarray, np.ndarray]]]:
    """CV score and out-of-fold ``(pred, proba)`` of every candidate, in input order."""
    scored = folds != UNSCORED_FOLD
    true_idx = np.searchsorted(np.unique(labels), labels[scored])
    scores: list[CandidateScore] = []
    oof: list[tuple[np.ndarray, np.ndarray]] = []
    for candidate in candidates:
        candidate_started = time.perf_counter()
        pred, proba = cross_validated_predictions(
            candidate, features, labels, folds, blas_threads=None, groups=groups
        )
        correct = pred[scored] == labels[scored]
        fold_accuracies = tuple(
            float(np.mean(correct[folds[scored] == fold])) for fold in np.unique(folds[scored])
        )
        temperature = fit_temperature(proba[scored], true_idx)
        scores.append(
            CandidateScore(
                candidate=candidate,
                accuracy=float(np.mean(correct)),
                log_loss=temperature_nll(proba[scored], true_idx, temperature),
                fold_accuracies=fold_accuracies,
                seconds=time.perf_counter() - candidate_started,
            )
        )
        oof.append((pred, proba))
    return scores, oof


def _data_shape(
    features: np.ndarray, labels: np.ndarray, folds: np.ndarray, groups: np.ndarray | None
) -> DataShape:
    """Sizes of the smallest CV training split, which every default candidate must fit on."""
    n_train = len(labels)
    min_class_count = len(labels)
    group_of = group_ids(groups, len(labels))
    for fold in np.unique(folds[folds != UNSCORED_FOLD]):
        train_labels = labels[training_rows(folds, group_of, fold)]
        n_train = min(n_train, len(train_labels))
        min_class_count = min(
            min_class_count, int(np.unique(train_labels, return_counts=True)[1].min())
        )
    return DataShape(
        n_train=n_train,
        min_class_count=min_class_count,
        n_classes=len(np.unique(labels)),
        n_features=features.shape[1],
    )


def _cross_fitted_calibration(
    proba: np.ndarray, true_idx: np.ndarray, folds: np.ndarray
) -> np.ndarray:
    """Temperature-scale each fold with a temperature fitted on the other folds (honest ECE)."""
    calibrated = np.empty_like(proba, dtype=np.float64)
    for fold in np.unique(folds):
        held_out = folds == fold
        temperature = fit_temperature(proba[~held_out], true_idx[~held_out])
        calibrated[held_out] = apply_temperature(proba[held_out], temperature)
    return calibrated

"""Temperature scaling: one scalar that makes a head's confidences mean what they say.

Capture decisions and the ``confidence`` in invoke responses read probabilities literally, so a
head that says 0.9 should be right about 90% of the time. Heads are not like that out of the box
(strongly regularised logistic regression is underconfident, kNN with few neighbours is
overconfident). Temperature scaling divides the head's log-probabilities by a temperature ``T``
fitted on out-of-fold predictions and renormalises with a softmax: ``T > 1`` softens, ``T < 1``
sharpens. It never changes which label ranks first, so accuracy is untouched.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from learner.heads import Classifier

PROBABILITY_FLOOR = 1e-12
"""Probabilities are clipped to this before the log, so hard zeros (kNN) stay finite."""

MIN_TEMPERATURE = 0.01
MAX_TEMPERATURE = 100.0


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Return ``softmax(log(proba) / temperature)`` row by row.

    Args:
        proba: (n_samples, n_labels) probabilities whose rows sum to 1.
        temperature: positive scalar; 1.0 returns (clipped) ``proba`` unchanged.
    """
    logits = np.log(np.clip(np.asarray(proba, dtype=np.float64), PROBABILITY_FLOOR, 1.0))
    logits /= temperature
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def temperature_nll(proba: np.ndarray, y_true_idx: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true labels after temperature scaling.

    Args:
        proba: (n_samples, n_labels) probabilities.
        y_true_idx: (n_samples,) column index of each sample's true label.
        temperature: positive scalar.
    """
    scaled = apply_temperature(proba, temperature)
    picked = scaled[np.arange(len(y_true_idx)), y_true_idx]
    return float(-np.mean(np.log(np.clip(picked, PROBABILITY_FLOOR, 1.0))))


def fit_temperature(
    oof_proba: np.ndarray, y_true_idx: np.ndarray, *, prior_weight: float = 1.0
) -> float:
    """Find the temperature that best explains held-out (out-of-fold) predictions.

    Minimises ``sum NLL(T) + prior_weight * log(T)**2 / 2``: the negative log-likelihood of the
    true labels plus a Gaussian prior centred on ``T = 1``. Without the prior a handful of
    all-correct samples drives ``T`` to its lower bound and every later prediction to 100%
    confidence, which would blind uncertainty-based capture on young functions; with thousands
    of samples the prior is negligible. The search is a bounded 1-D minimisation over ``log T``
    in [``MIN_TEMPERATURE``, ``MAX_TEMPERATURE``]; without samples it returns 1.0 (no change).

    Args:
        oof_proba: (n_samples, n_labels) probabilities the head gave samples it was not trained on.
        y_true_idx: (n_samples,) column index of each sample's true label.
        prior_weight: strength of the pull towards ``T = 1`` (in samples' worth of evidence);
            0 gives plain maximum-likelihood temperature scaling.
    """
    proba = np.asarray(oof_proba, dtype=np.float64)
    labels_idx = np.asarray(y_true_idx, dtype=np.int64)
    if proba.ndim != 2 or len(proba) != len(labels_idx):
        raise ValueError("oof_proba must be (n_samples, n_labels) and match y_true_idx")
    if len(labels_idx) == 0:
        return 1.0
    n_samples = len(labels_idx)

    def objective(log_t: float) -> float:
        nll = temperature_nll(proba, labels_idx, float(np.exp(log_t)))
        return nll + prior_weight * log_t**2 / (2 * n_samples)

    result = minimize_scalar(
        objective,
        bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


class TemperatureScaledHead:
    """A fitted estimator whose probabilities are temperature-scaled: the head winnow serves.

    It exposes ``classes_``, ``predict_proba`` and ``predict`` like the wrapped estimator, so
    callers never need to know calibration happens.

    Args:
        estimator: a fitted scikit-learn style classifier.
        temperature: positive scalar from :func:`fit_temperature`.
    """

    def __init__(self, estimator: Classifier, temperature: float = 1.0) -> None:
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.estimator = estimator
        self.temperature = float(temperature)

    @property
    def classes_(self) -> np.ndarray:
        return self.estimator.classes_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated (n_samples, n_labels) probabilities, columns in ``classes_`` order."""
        return apply_temperature(self.estimator.predict_proba(X), self.temperature)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable label per row (identical to the wrapped estimator's ranking)."""
        return np.asarray(self.classes_)[np.argmax(self.predict_proba(X), axis=1)]

    def __repr__(self) -> str:
        return f"TemperatureScaledHead({self.estimator!r}, temperature={self.temperature:.4g})"

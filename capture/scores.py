"""Informativeness scores: pure functions over batches, every score in [0, 1], 1 = most informative.

Uncertainty functions take class probabilities shaped ``(n, k)`` (``n`` inputs, ``k`` classes) and
return ``(n,)``. :func:`knn_novelty` turns distances to the ``k`` nearest stored vectors into a
novelty score, and :func:`informativeness` combines the two.

Why uncertainty dominates: plain margin sampling is a strong baseline that elaborate strategies
rarely beat (Bahri et al. 2022, "Is margin all you need?"; Munjal et al. 2022), and at the small
labelling budgets typical of a review queue, weighting diversity heavily *hurts*: the most "novel"
inputs are outliers (blank frames, corrupt photos) that teach the head little (Hacohen et al. 2022,
"Active learning on a budget"). So novelty is an optional term, off by default
(:data:`DEFAULT_NOVELTY_WEIGHT`): spreading captures over the traffic is done by coverage balancing
(:mod:`capture.coverage`), which follows traffic density and so does not chase outliers, and not
capturing a near-duplicate of something already labelled or queued is done by the policy's
duplicate threshold. On the label-efficiency benchmark (``bench/label_efficiency.py``) a novelty
weight of 0.2 cost accuracy at every budget.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from capture.errors import InvalidArray

# Share of the informativeness score that comes from novelty; the rest is uncertainty.
DEFAULT_NOVELTY_WEIGHT = 0.0

DistanceMetric = Literal["cosine", "squared_l2"]

# Largest possible distance between two unit vectors, per metric (opposite directions).
_MAX_DISTANCE: dict[str, float] = {"cosine": 2.0, "squared_l2": 4.0}


def _probability_batch(proba: ArrayLike) -> np.ndarray:
    """Validate ``proba`` as a finite ``(n, k)`` float array with ``k >= 1``."""
    array = np.asarray(proba, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 1:
        raise InvalidArray(
            f"probabilities must be shaped (n, k) with k >= 1, got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise InvalidArray("probabilities contain NaN or infinite values")
    return np.clip(array, 0.0, 1.0)


def _top_two(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest and second-largest probability per row (second is 0 when k == 1)."""
    if proba.shape[1] == 1:
        return proba[:, 0], np.zeros(proba.shape[0])
    top = -np.partition(-proba, 1, axis=1)[:, :2]
    return top[:, 0], top[:, 1]


def margin_uncertainty(proba: ArrayLike) -> np.ndarray:
    """``1 - (p1 - p2)``: how close the two most likely classes are.

    Args:
        proba: class probabilities, shape ``(n, k)``.

    Returns:
        Shape ``(n,)``; 1 for a tie between the top two classes, 0 for a one-hot prediction.
    """
    first, second = _top_two(_probability_batch(proba))
    return np.clip(1.0 - (first - second), 0.0, 1.0)


def entropy_uncertainty(proba: ArrayLike) -> np.ndarray:
    """Shannon entropy of the prediction divided by ``log k`` (its maximum).

    Args:
        proba: class probabilities, shape ``(n, k)``; a single class (k == 1) scores 0.

    Returns:
        Shape ``(n,)``; 1 for a uniform prediction, 0 for a one-hot one.
    """
    array = _probability_batch(proba)
    n_classes = array.shape[1]
    if n_classes == 1:
        return np.zeros(array.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(array > 0.0, array * np.log(array), 0.0)
    return np.clip(-terms.sum(axis=1) / np.log(n_classes), 0.0, 1.0)


def least_confidence(proba: ArrayLike) -> np.ndarray:
    """``1 - p1`` scaled by its maximum ``(k - 1) / k`` so a uniform prediction scores 1.

    Args:
        proba: class probabilities, shape ``(n, k)``; a single class (k == 1) scores 0.

    Returns:
        Shape ``(n,)``.
    """
    array = _probability_batch(proba)
    n_classes = array.shape[1]
    if n_classes == 1:
        return np.zeros(array.shape[0])
    first, _ = _top_two(array)
    return np.clip((1.0 - first) / ((n_classes - 1) / n_classes), 0.0, 1.0)


def knn_novelty(distances: ArrayLike, *, metric: DistanceMetric = "cosine") -> np.ndarray:
    """Mean distance to the nearest stored vectors, scaled to [0, 1].

    Distances between unit vectors are bounded (cosine distance ``1 - cos`` by 2, squared L2
    ``2 - 2 cos`` by 4), so dividing the mean by that bound maps "identical" to 0 and "opposite"
    to 1. Missing neighbours (NaN, e.g. an index with fewer than k vectors) are ignored; a row with
    no neighbour at all (an empty index) is maximally novel and scores 1.

    Args:
        distances: shape ``(n, k)``; ``k`` may be 0.
        metric: ``"cosine"`` (``1 - similarity``) or ``"squared_l2"``.

    Returns:
        Shape ``(n,)``.
    """
    if metric not in _MAX_DISTANCE:
        raise InvalidArray(f"unknown distance metric {metric!r}; use 'cosine' or 'squared_l2'")
    array = np.asarray(distances, dtype=np.float64)
    if array.ndim != 2:
        raise InvalidArray(f"distances must be shaped (n, k), got shape {array.shape}")
    if np.any(np.isinf(array)):
        raise InvalidArray("distances contain infinite values (use NaN for a missing one)")
    present = ~np.isnan(array)
    counts = present.sum(axis=1)
    sums = np.where(present, array, 0.0).sum(axis=1)
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    novelty = np.where(counts > 0, means / _MAX_DISTANCE[metric], 1.0)
    return np.clip(novelty, 0.0, 1.0)


def informativeness(
    uncertainty: ArrayLike,
    novelty: ArrayLike,
    *,
    novelty_weight: float = DEFAULT_NOVELTY_WEIGHT,
) -> np.ndarray:
    """Weighted mean ``(1 - w) * uncertainty + w * novelty`` (see the module notes for ``w``).

    Args:
        uncertainty: shape ``(n,)``, values in [0, 1].
        novelty: shape ``(n,)``, values in [0, 1].
        novelty_weight: ``w`` in [0, 1]; keep it small so uncertainty stays dominant.

    Returns:
        Shape ``(n,)``, values in [0, 1].
    """
    if not 0.0 <= novelty_weight <= 1.0:
        raise InvalidArray(f"novelty_weight must be within [0, 1], got {novelty_weight}")
    uncertain = np.asarray(uncertainty, dtype=np.float64)
    novel = np.asarray(novelty, dtype=np.float64)
    if uncertain.shape != novel.shape or uncertain.ndim != 1:
        raise InvalidArray(
            f"uncertainty and novelty must both be shaped (n,), got {uncertain.shape} "
            f"and {novel.shape}"
        )
    combined = (1.0 - novelty_weight) * uncertain + novelty_weight * novel
    return np.clip(combined, 0.0, 1.0)


def unit_rows(vectors: ArrayLike) -> np.ndarray:
    """``(n, dim)`` vectors scaled to unit length (a zero row stays zero), checked finite."""
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2:
        raise InvalidArray(f"vectors must be shaped (n, dim), got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise InvalidArray("vectors contain NaN or infinite values")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)

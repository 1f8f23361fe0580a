"""Mislabel suspects: which labelled samples probably carry the wrong label.

Two opinions about each sample's class are blended: the out-of-fold probabilities of the head
that model selection chose (the head never saw the sample; temperature-scaled, so thresholds
mean the same for every head family) and the labels of the sample's nearest labelled neighbours
in embedding space (leave-one-out kNN). The label quality is a normalised margin of the blend,
``(p[given] - 0.75 * max other p + 0.75) / 1.75`` in [0, 1], and samples below 0.275 are flagged.
Those numbers were chosen on the B6 benchmark (``bench/label_errors.py``, tuning seeds 100-102,
reported seeds 0-2): on Fashion-MNIST with 10% flipped labels the margin ranks random flips and
look-alike flips both well (self-confidence alone is better on the first and worse on the second),
the neighbours add a little, and a fixed cut on calibrated probabilities flagged a count closer to
the true one than confident learning's per-class thresholds did. The shape follows cleanlab's
Datalab issue managers (score in [0, 1], near 0 = severe; a flag; a suggestion), without cleanlab
(AGPL), which the benchmark runs as the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from learner.calibration import apply_temperature

DEFAULT_KNN_K = 20
DEFAULT_KNN_WEIGHT = 0.3
DEFAULT_OTHER_WEIGHT = 0.75
DEFAULT_FLAG_BELOW = 0.275
# Above this many samples the O(n^2) neighbour search (~1 s at 10,000 x 512 on one core) is
# skipped and the probabilities alone decide (on B6's tuning seeds the neighbours added 1-2
# points of F1: 0.766 -> 0.784 random flips, 0.680 -> 0.691 look-alike flips).
MAX_KNN_SAMPLES = 20_000
_CHUNK = 2048  # rows of the similarity matrix computed at once (memory ~ chunk x n floats)


@dataclass(frozen=True)
class LabelIssues:
    """Per-sample verdicts of :func:`find_label_issues`, in input order.

    Attributes:
        quality: (n,) label quality in [0, 1], a normalised margin of the blended probabilities
            (see :func:`find_label_issues`); near 0 = the label is very likely wrong; NaN where
            unscored.
        flagged: (n,) whether the sample is a suspect (False where unscored).
        suggested: (n,) column index of the most likely other label (-1 where unscored).
        suggested_confidence: (n,) blended probability of the suggested label (NaN if unscored).
    """

    quality: np.ndarray
    flagged: np.ndarray
    suggested: np.ndarray
    suggested_confidence: np.ndarray

    def ranked_suspects(self) -> np.ndarray:
        """Indices of the flagged samples, most suspicious (lowest quality) first."""
        flagged = np.flatnonzero(self.flagged)
        return flagged[np.argsort(self.quality[flagged], kind="stable")]

    @property
    def flagged_share(self) -> float:
        """Share of scored samples flagged: the dataset-level summary number."""
        scored = ~np.isnan(self.quality)
        return float(self.flagged[scored].mean()) if scored.any() else 0.0


def find_label_issues(
    proba: np.ndarray,
    given: np.ndarray,
    *,
    vectors: np.ndarray | None = None,
    temperature: float = 1.0,
    knn_k: int = DEFAULT_KNN_K,
    knn_weight: float = DEFAULT_KNN_WEIGHT,
    other_weight: float = DEFAULT_OTHER_WEIGHT,
    flag_below: float = DEFAULT_FLAG_BELOW,
) -> LabelIssues:
    """Score every labelled sample's label and flag the probable mistakes.

    Args:
        proba: (n, n_labels) out-of-fold probabilities, columns in label order; rows with NaN
            (samples cross-validation never scored) get no verdict.
        given: (n,) column index of each sample's given label.
        vectors: (n, dim) L2-normalised embeddings for the kNN opinion; ``None`` (or more than
            ``MAX_KNN_SAMPLES`` samples) uses the probabilities alone.
        temperature: the temperature fitted on ``proba`` (``TrainResult.temperature``), applied
            before blending.
        knn_k: neighbours per sample.
        knn_weight: share of the blend that comes from the neighbours, in [0, 1].
        other_weight: weight of the strongest other label in the margin, in [0, 1] (0 is plain
            self-confidence, 1 the full margin).
        flag_below: label quality under which a sample is flagged.

    Raises:
        ValueError: shapes that do not match, a given index outside the columns, or weights
            outside [0, 1].
    """
    proba = np.asarray(proba, dtype=np.float64)
    given = np.asarray(given, dtype=np.int64)
    n, n_labels = proba.shape if proba.ndim == 2 else (0, 0)
    if proba.ndim != 2 or given.shape != (n,):
        raise ValueError(
            f"proba must be (n, n_labels) and given (n,); got {proba.shape}, {given.shape}"
        )
    if n and (given.min() < 0 or given.max() >= n_labels):
        raise ValueError(f"given label indices must be within [0, {n_labels})")
    for name, weight in (("knn_weight", knn_weight), ("other_weight", other_weight)):
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {weight}")
    scored = ~np.isnan(proba).any(axis=1)
    blend = np.zeros_like(proba)
    if scored.any():
        blend[scored] = apply_temperature(proba[scored], temperature)
    if vectors is not None and knn_weight > 0 and 1 < n <= MAX_KNN_SAMPLES:
        neighbours = knn_label_distribution(vectors, given, n_labels, k=knn_k)
        blend = (1.0 - knn_weight) * blend + knn_weight * neighbours
    rows = np.arange(n)
    own = blend[rows, given]
    others = blend.copy()
    others[rows, given] = -np.inf
    suggested = np.argmax(others, axis=1) if n_labels > 1 else np.zeros(n, dtype=np.int64)
    best_other = others[rows, suggested] if n_labels > 1 else np.zeros(n)
    margin = (own - other_weight * best_other + other_weight) / (1.0 + other_weight)
    quality = np.where(scored, np.clip(margin, 0.0, 1.0), np.nan)
    flagged = scored & (np.nan_to_num(quality, nan=1.0) < flag_below)
    return LabelIssues(
        quality=quality,
        flagged=flagged,
        suggested=np.where(scored, suggested, -1),
        suggested_confidence=np.where(scored, best_other, np.nan),
    )


def knn_label_distribution(
    vectors: np.ndarray, given: np.ndarray, n_labels: int, *, k: int = DEFAULT_KNN_K
) -> np.ndarray:
    """Leave-one-out label shares among each sample's ``k`` most similar other samples.

    Neighbours vote with their cosine similarity (floored at 0), so a far neighbour counts less.
    Costs O(n^2 dim) in chunks of rows; at 10,000 samples of 512 dimensions about a second.

    Args:
        vectors: (n, dim) L2-normalised embeddings.
        given: (n,) label column index per sample.
        n_labels: number of label columns.
        k: neighbours per sample (capped at n - 1).
    """
    matrix = np.asarray(vectors, dtype=np.float32)
    n = len(matrix)
    if matrix.ndim != 2 or n != len(given):
        raise ValueError(f"vectors must be (n, dim) with n = {len(given)}, got {matrix.shape}")
    k = max(1, min(k, n - 1))
    shares = np.zeros((n, n_labels))
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        similarity = matrix[start:stop] @ matrix.T
        similarity[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not itself
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weights = np.maximum(np.take_along_axis(similarity, nearest, axis=1), 0.0) + 1e-6
        np.add.at(shares[start:stop], (np.arange(stop - start)[:, None], given[nearest]), weights)
    return shares / shares.sum(axis=1, keepdims=True)

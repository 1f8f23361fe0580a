"""Calibrated novelty: how unlike a function's labelled data an input is, as a share in [0, 1].

Two signals, each blind where the other sees (chosen on benchmark B7, ``bench/novelty.py``):

* distance, relative to recent traffic: the mean cosine similarity of the ``traffic_k`` nearest
  inputs of the function's recent traffic (:class:`capture.traffic.RecentTraffic`) minus that of
  the ``traffic_k`` nearest labelled samples. A region the traffic keeps visiting but no label
  covers is new, even where it lies *between* known classes (unseen shirts among labelled
  T-shirts and coats, where plain distance to the labelled data says little: on B7 it lifted the
  look-alike AUROC from 0.70 to 0.91). An input of a known class has neighbours of both kinds, so
  only the *excess* of traffic counts. Until a function has seen ``MIN_TRAFFIC`` inputs this
  falls back to the plain mean cosine distance to the ``k`` nearest labelled samples;
* energy: minus the log-sum-exp of the logits of a multinomial logistic regression over the
  labelled classes (weakly regularised, in the top principal components). An input that matches
  no known class well gets low logits for all of them even when it lies near labelled data, as an
  unseen shirt between labelled T-shirts and coats does. (On B7 it beat a shrinkage-LDA
  posterior, a Mahalanobis distance and the max-probability as the second signal.)

Raw values mean nothing across functions (a tight backbone or a spread-out label set shifts them),
so each is calibrated: its value for every labelled sample is measured out of sample (leave-one-
out for the distances, K-fold for the energy), and a new input's raw value becomes the share of
labelled samples with a lower one (an empirical CDF, i.e. one minus a conformal p-value). The
traffic-relative distance depends on the traffic, so its calibration is redone against the
traffic as it moves on (:meth:`NoveltyModel.calibrate_to`). The two shares are combined with
Fisher's method (``-log(1 - share)`` summed) and calibrated once more the same way, so the final
novelty of in-distribution inputs is roughly uniform on [0, 1] for every function: a threshold of
0.99 flags about 1% of ordinary traffic, whatever the function.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from capture.errors import InvalidArray
from capture.proposals import class_spread
from capture.scores import unit_rows

# Labelled samples the calibration measures out of sample at most (a random subset beyond it).
MAX_CALIBRATION = 2000
# Of those, the ones whose traffic-relative distance is remeasured when the traffic moves on
# (each recalibration costs ``MAX_TRAFFIC_CALIBRATION x traffic`` dot products).
MAX_TRAFFIC_CALIBRATION = 500
# Labelled samples the distance is measured to at most (a random subset beyond it), which bounds
# the model's memory and the cost of an invoke for functions with very many samples.
MAX_REFERENCE = 20_000
# Fewest labelled samples (and classes) a model is fitted on; below it novelty is unknown.
MIN_SAMPLES, MIN_CLASSES = 10, 2
# Fewest recent inputs the distance is measured relative to (fewer: plain distance).
MIN_TRAFFIC = 100


@dataclass(frozen=True)
class TrafficCalibration:
    """A model's calibration against one snapshot of recent traffic (see ``calibrate_to``)."""

    # The traffic-relative distance of the calibration samples, sorted.
    relative_ref: np.ndarray
    # Their combined (Fisher) value with the energy, sorted.
    combined_ref: np.ndarray


class NoveltyModel:
    """Scores inputs against one function's labelled vectors; immutable once fitted."""

    def __init__(
        self,
        vectors: ArrayLike,
        labels: Sequence[str],
        *,
        k: int = 5,
        traffic_k: int = 20,
        folds: int = 5,
        components: int = 256,
        regularisation: float = 30.0,
        seed: int = 0,
    ) -> None:
        """Fit on the labelled data and calibrate (seconds for a few thousand samples).

        Args:
            vectors: labelled embeddings, shape ``(n, dim)``.
            labels: class name per row; at least 2 classes and ``MIN_SAMPLES`` rows.
            k: nearest labelled neighbours averaged for the plain distance.
            traffic_k: nearest neighbours (labelled, and of the traffic) averaged for the
                traffic-relative distance.
            folds: folds of the out-of-sample energy used for calibration.
            components: principal components the regression works in (cost and stability).
            regularisation: the regression's inverse L2 strength ``C`` (large: sharp logits).
            seed: for the calibration subset and the folds.
        """
        matrix = unit_rows(vectors)
        names = np.asarray(labels)
        classes = np.unique(names)
        if matrix.shape[0] != names.shape[0]:
            raise InvalidArray(f"{names.shape[0]} labels for {matrix.shape[0]} vectors")
        if matrix.shape[0] < MIN_SAMPLES or classes.shape[0] < MIN_CLASSES:
            raise InvalidArray(
                f"novelty needs {MIN_SAMPLES} labelled samples of {MIN_CLASSES} labels, "
                f"got {matrix.shape[0]} of {classes.shape[0]}"
            )
        self._k = min(k, matrix.shape[0] - 1)
        self._traffic_k = min(traffic_k, matrix.shape[0] - 1)
        rng = np.random.default_rng(seed)
        reference = np.arange(matrix.shape[0])
        if reference.shape[0] > MAX_REFERENCE:
            reference = np.sort(rng.choice(reference, MAX_REFERENCE, replace=False))
        self._labelled = matrix[reference].astype(np.float32)
        centre = matrix.mean(axis=0)
        rank = min(components, matrix.shape[0] - 1, matrix.shape[1])
        _, _, basis = np.linalg.svd(matrix - centre, full_matrices=False)
        self._centre, self._basis = centre, basis[:rank]
        projected = (matrix - centre) @ self._basis.T
        self._logits = _fit_logits(projected, names, regularisation, seed)
        # for new-class proposals: each class's mean and how spread out a typical class is
        self.class_means = {str(c): matrix[names == c].mean(axis=0) for c in classes}
        self.class_spread = class_spread(matrix, names, seed=seed)

        # positions in the reference set, so each one is left out of its own distance
        calibration = np.arange(reference.shape[0])
        if calibration.shape[0] > MAX_CALIBRATION:
            calibration = np.sort(rng.choice(calibration, MAX_CALIBRATION, replace=False))
        distance, labelled_similarity = self._nearest(self._labelled[calibration], calibration)
        energy = np.empty(matrix.shape[0])
        fold_of = rng.permutation(matrix.shape[0]) % max(2, folds)
        for fold in np.unique(fold_of):
            held = fold_of == fold
            kept = names[~held]
            if np.unique(kept).shape[0] < MIN_CLASSES:
                energy[held] = _energy(self._logits, projected[held])
                continue
            fold_logits = _fit_logits(projected[~held], kept, regularisation, seed)
            energy[held] = _energy(fold_logits, projected[held])
        self._distance_ref = np.sort(distance)
        self._energy_ref = np.sort(energy[reference[calibration]])
        energy_share = _share_below(self._energy_ref, energy[reference[calibration]])
        combined = _fisher(_share_below(self._distance_ref, distance), energy_share)
        self._combined_ref = np.sort(combined)
        # what calibrate_to needs: a subset of the calibration samples, their labelled
        # neighbours' similarity and their energy share
        subset = np.arange(calibration.shape[0])
        if subset.shape[0] > MAX_TRAFFIC_CALIBRATION:
            subset = np.sort(rng.choice(subset, MAX_TRAFFIC_CALIBRATION, replace=False))
        self._traffic_rows = self._labelled[calibration[subset]]
        self._traffic_labelled_similarity = labelled_similarity[subset]
        self._traffic_energy_share = energy_share[subset]

    @property
    def dim(self) -> int:
        """Embedding dimension of the labelled data."""
        return int(self._labelled.shape[1])

    @property
    def size(self) -> int:
        """Labelled samples the distance is measured to (all of them up to ``MAX_REFERENCE``)."""
        return int(self._labelled.shape[0])

    def nbytes(self) -> int:
        """Memory its arrays hold (approximate: the fitted logistic regression's included)."""
        arrays = [v for v in vars(self).values() if isinstance(v, np.ndarray)]
        arrays += [v for v in vars(self._logits).values() if isinstance(v, np.ndarray)]
        return sum(a.nbytes for a in arrays)

    def calibrate_to(self, traffic: np.ndarray) -> TrafficCalibration | None:
        """Calibrate the traffic-relative distance against ``traffic`` (unit rows of recent
        inputs, ``(m, dim)``); None below ``MIN_TRAFFIC`` rows (the plain distance serves)."""
        if traffic.shape[0] < max(MIN_TRAFFIC, self._traffic_k):
            return None
        relative = (
            _top_mean(self._traffic_rows @ traffic.T, self._traffic_k)
            - self._traffic_labelled_similarity
        )
        relative_ref = np.sort(relative)
        combined = _fisher(_share_below(relative_ref, relative), self._traffic_energy_share)
        return TrafficCalibration(relative_ref, np.sort(combined))

    def score(
        self,
        vectors: ArrayLike,
        traffic: np.ndarray | None = None,
        calibration: TrafficCalibration | None = None,
        *,
        traffic_similarities: np.ndarray | None = None,
    ) -> np.ndarray:
        """Calibrated novelty of each input: the share of labelled samples less novel than it.

        Args:
            vectors: shape ``(n, dim)``.
            traffic: recent inputs (unit rows), which the distance is measured relative to when
                ``calibration`` (this model's :meth:`calibrate_to` of similar traffic) is given.
            calibration: see ``traffic``; None: the plain distance.
            traffic_similarities: ``vectors @ traffic.T`` (float32) if the caller has it.

        Returns:
            Shape ``(n,)`` in [0, 1]; 1 = more novel than every labelled sample.
        """
        matrix = unit_rows(vectors)
        if matrix.shape[1] != self._labelled.shape[1]:
            raise InvalidArray(
                f"vectors must be shaped (n, {self._labelled.shape[1]}), got {matrix.shape}"
            )
        projected = (matrix - self._centre) @ self._basis.T
        energy_share = _share_below(self._energy_ref, _energy(self._logits, projected))
        distance, labelled_similarity = self._nearest(matrix)
        if traffic is None or calibration is None:
            combined = _fisher(_share_below(self._distance_ref, distance), energy_share)
            return _share_below(self._combined_ref, combined)
        if traffic_similarities is None:
            traffic_similarities = matrix.astype(np.float32) @ traffic.T
        relative = _top_mean(traffic_similarities, self._traffic_k)
        relative -= labelled_similarity
        combined = _fisher(_share_below(calibration.relative_ref, relative), energy_share)
        return _share_below(calibration.combined_ref, combined)

    def _nearest(
        self, queries: np.ndarray, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean cosine distance to the k nearest labelled rows and mean similarity of the
        traffic_k nearest (``exclude[i]``: a row of the labelled set that query ``i`` is, left
        out: leave-one-out)."""
        distance, similarity = np.empty(queries.shape[0]), np.empty(queries.shape[0])
        for start in range(0, queries.shape[0], 512):
            chunk = slice(start, start + 512)
            similarities = queries[chunk].astype(np.float32) @ self._labelled.T
            if exclude is not None:
                similarities[np.arange(similarities.shape[0]), exclude[chunk]] = -np.inf
            distance[chunk] = 1.0 - _top_mean(similarities, self._k)
            similarity[chunk] = _top_mean(similarities, self._traffic_k)
        return distance, similarity


def _top_mean(similarities: np.ndarray, k: int) -> np.ndarray:
    """Mean of each row's ``k`` largest values."""
    return np.asarray(-np.partition(-similarities, k - 1, axis=1)[:, :k], np.float64).mean(axis=1)


def _fit_logits(
    projected: np.ndarray, names: np.ndarray, regularisation: float, seed: int
) -> LogisticRegression:
    """A multinomial logistic regression over the labelled classes."""
    model = LogisticRegression(C=regularisation, max_iter=300, random_state=seed)
    with warnings.catch_warnings():  # a few unconverged iterations barely move the logits
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(projected, names)


def _energy(model: LogisticRegression, projected: np.ndarray) -> np.ndarray:
    """``-logsumexp`` of the logits: high = fits no class. With two classes scikit-learn gives one
    logit ``z``, which is the symmetric pair ``(-z/2, z/2)`` of the multinomial form."""
    # decision_function's arithmetic without its input validation and scipy's array-API
    # dispatch, which cost more than the product itself per scored invoke (~0.2 ms)
    coef, intercept = model.coef_, model.intercept_
    logits = np.asarray(projected, dtype=np.float64) @ coef.T.astype(np.float64) + intercept
    if logits.shape[1] == 1:
        logits = np.concatenate([-logits / 2.0, logits / 2.0], axis=1)
    top = logits.max(axis=1, keepdims=True)
    return -(top[:, 0] + np.log(np.exp(logits - top).sum(axis=1)))


def _share_below(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Share of the sorted ``reference`` strictly below each value (ties count half)."""
    below = np.searchsorted(reference, values, side="left")
    at_or_below = np.searchsorted(reference, values, side="right")
    return (below + at_or_below) / (2.0 * reference.shape[0])


def _fisher(*shares: np.ndarray) -> np.ndarray:
    """Fisher's combination ``sum(-log(1 - share))`` (share 1 is clipped just below)."""
    total = np.zeros_like(shares[0])
    for share in shares:
        total -= np.log(np.clip(1.0 - share, 1e-6, 1.0))
    return total

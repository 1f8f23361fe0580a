"""A head that also learns from unlabelled traffic: label spreading, then logistic regression.

The service sees far more inputs than anyone labels. :class:`SpreadThenLogistic` spreads the
labels over a k-nearest-neighbour graph of the labelled samples plus a sample of the function's
recent unlabelled traffic (scikit-learn's ``LabelSpreading``, Zhou et al. 2004), gives the traffic
vectors the spreading labels confidently those labels, and fits multinomial logistic regression on
the labelled samples and those pseudo-labelled vectors (with a lower weight). What it serves is
that logistic regression: traffic shapes the boundaries, never the answer to one input.

It is one more candidate of the usual grid (:class:`SpreadingFamily`), scored by the same
cross-validation on labelled samples only: in each fold the held-out labels are hidden from the
spreading like any traffic vector, so pseudo-labels never grade themselves. Traffic vectors that
repeat a labelled sample (cosine similarity >= :data:`DUPLICATE`: the input that was captured and
then labelled) are dropped first, so a held-out sample's own vector cannot carry its label in.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.semi_supervised import LabelSpreading

from learner.heads import Classifier, DataShape, register_head_family

DUPLICATE = 0.999
"""Cosine similarity at which a traffic vector counts as a labelled sample's own input."""


class SpreadThenLogistic:
    """Logistic regression fitted on labelled samples plus confidently label-spread traffic.

    Attributes (after :meth:`fit`):
        classes_: the labels, sorted.
        estimator_: the fitted ``LogisticRegression`` that answers (what is pickled and exported).
        pseudo_labelled_: how many traffic vectors it was trained on.
    """

    def __init__(
        self,
        unlabeled: np.ndarray,
        *,
        C: float = 1.0,
        n_neighbors: int = 10,
        alpha: float = 0.2,
        min_confidence: float = 0.7,
        pseudo_weight: float = 0.5,
    ) -> None:
        """
        Args:
            unlabeled: ``(m, dim)`` unit traffic vectors (only read by :meth:`fit`, not kept).
            C: inverse regularisation of the logistic regression.
            n_neighbors: neighbours per vector in the spreading graph.
            alpha: how much of a labelled sample's label the spreading may change (0: none).
            min_confidence: least spread probability of its label for a traffic vector to be
                trained on.
            pseudo_weight: sample weight of a pseudo-labelled vector (a labelled one weighs 1).
        """
        self._unlabeled: np.ndarray | None = np.asarray(unlabeled, dtype=np.float32)
        self.C = C
        self.n_neighbors = n_neighbors
        self.alpha = alpha
        self.min_confidence = min_confidence
        self.pseudo_weight = pseudo_weight

    def fit(self, X: np.ndarray, y: np.ndarray) -> SpreadThenLogistic:
        features = np.asarray(X, dtype=np.float32)
        self.classes_, index = np.unique(np.asarray(y), return_inverse=True)
        traffic = _unseen(self._unlabeled, features)
        self._unlabeled = None  # a fitted head keeps no traffic (artifacts stay small)
        pseudo, pseudo_index = self._pseudo_labelled(features, index, traffic)
        self.pseudo_labelled_ = len(pseudo)
        weights = np.concatenate([np.ones(len(features)), np.full(len(pseudo), self.pseudo_weight)])
        self.estimator_ = LogisticRegression(C=self.C, max_iter=300, tol=1e-3)
        self.estimator_.fit(
            np.vstack([features, pseudo]),
            self.classes_[np.concatenate([index, pseudo_index])],
            sample_weight=weights,
        )
        return self

    def _pseudo_labelled(
        self, features: np.ndarray, index: np.ndarray, traffic: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Traffic vectors the spreading labels with at least ``min_confidence``, and those
        labels (as indices into ``classes_``)."""
        if len(traffic) == 0 or len(self.classes_) < 2:
            return traffic[:0], index[:0]
        every = np.vstack([features, traffic])
        spreading = LabelSpreading(
            kernel="knn",
            n_neighbors=min(self.n_neighbors, len(every) - 1),
            alpha=self.alpha,
            max_iter=100,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            spreading.fit(every, np.concatenate([index, np.full(len(traffic), -1)]))
        spread = spreading.label_distributions_[len(features) :]
        with np.errstate(invalid="ignore"):  # a vector no label reached has a 0/0 row
            confidence = np.nan_to_num(spread.max(axis=1))
        keep = confidence >= self.min_confidence
        # LabelSpreading's classes_ are the indices present, here all of 0..len(classes_)-1
        return traffic[keep], spreading.classes_[np.argmax(spread[keep], axis=1)]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.predict(X)


def _unseen(traffic: np.ndarray | None, labelled: np.ndarray) -> np.ndarray:
    """``traffic`` without the vectors that repeat a labelled sample."""
    if traffic is None or len(traffic) == 0:
        return np.zeros((0, labelled.shape[1]), dtype=np.float32)
    if traffic.shape[1] != labelled.shape[1]:
        raise ValueError(
            f"traffic vectors have dimension {traffic.shape[1]}, samples {labelled.shape[1]}"
        )
    nearest = np.max(traffic @ labelled.T, axis=1)
    return traffic[nearest < DUPLICATE]


class SpreadingFamily:
    """:class:`SpreadThenLogistic`, proposed when the function has unlabelled traffic.

    It steps aside once the labelled samples outnumber the traffic sample
    ``max_labelled_per_traffic`` times over: by then spreading measured no gain (see B1) and
    only adds cross-validation time.
    """

    name = "label_spreading"
    needs_unlabeled = True
    c_grid: tuple[float, ...] = (1.0, 10.0)
    min_traffic = 50
    max_labelled_per_traffic = 2.0

    def build(self, params: Mapping[str, Any], *, unlabeled: Any = None) -> Classifier:
        if unlabeled is None:
            raise ValueError("label_spreading needs the function's unlabelled traffic")
        return SpreadThenLogistic(
            unlabeled,
            C=float(params.get("C", 1.0)),
            n_neighbors=int(params.get("n_neighbors", 10)),
            alpha=float(params.get("alpha", 0.2)),
            min_confidence=float(params.get("min_confidence", 0.7)),
            pseudo_weight=float(params.get("pseudo_weight", 0.5)),
        )

    def grid(self, shape: DataShape) -> list[dict[str, Any]]:
        return [{"C": c} for c in self.c_grid]

    def applies(self, shape: DataShape, traffic: int) -> bool:
        """Whether this family is worth cross-validating for ``traffic`` unlabelled vectors."""
        enough = traffic >= self.min_traffic
        return enough and shape.n_train <= self.max_labelled_per_traffic * traffic


register_head_family(SpreadingFamily())

"""Candidate classifier heads over frozen, L2-normalised image embeddings.

A *head family* (logistic regression, kNN, calibrated linear SVM) knows how to build a
scikit-learn estimator from plain parameters and which parameter grid is worth trying for a given
data shape. Families live in a registry keyed by ``name`` so a new head type is one class plus one
:func:`register_head_family` call. A :class:`Candidate` is one point of a family's grid; it is
plain data (name + params), so it can be stored in model metadata and rebuilt later, for example
to re-evaluate the deployed champion on a challenger's folds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC


class Classifier(Protocol):
    """The scikit-learn contract every head follows (``classes_`` exists once fitted)."""

    classes_: np.ndarray

    def fit(self, X: np.ndarray, y: np.ndarray) -> Any: ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class DataShape:
    """What a family needs to know about the data to choose a sensible grid.

    Attributes:
        n_train: size of the smallest training set a candidate will be fitted on (a CV split).
        min_class_count: fewest samples any label has in such a training set.
        n_classes: number of distinct labels.
        n_features: embedding dimension.
    """

    n_train: int
    min_class_count: int
    n_classes: int
    n_features: int


class HeadFamily(Protocol):
    """A kind of head: builds estimators and proposes a parameter grid for a data shape."""

    name: str

    def build(self, params: Mapping[str, Any]) -> Classifier: ...

    def grid(self, shape: DataShape) -> list[dict[str, Any]]: ...


class LogisticRegressionFamily:
    """Multinomial L2 logistic regression (lbfgs), the workhorse linear probe.

    Inputs are unit vectors, so single coordinates are ~1/sqrt(dim) and useful weights are large:
    small C (strong shrinkage) behaves like a nearest-class-mean classifier, which is what few-shot
    data needs, while large C lets big data fit sharper boundaries. The grid spans both ends; the
    underconfidence of small C is fixed afterwards by temperature scaling.
    """

    name = "logistic_regression"
    c_grid: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0)

    def build(self, params: Mapping[str, Any]) -> Classifier:
        # tol=1e-3 halves lbfgs time versus the default and does not move the argmax in practice.
        return LogisticRegression(C=float(params.get("C", 1.0)), max_iter=300, tol=1e-3)

    def grid(self, shape: DataShape) -> list[dict[str, Any]]:
        return [{"C": c} for c in self.c_grid]


class CosineKNeighbors:
    """Distance-weighted cosine kNN, the same as scikit-learn's ``KNeighborsClassifier(
    weights="distance", metric="cosine", algorithm="brute")``, in a few numpy operations.

    scikit-learn's kNN costs 5-15 ms per ``predict_proba`` call whatever the size (input checks
    and a thread-pool dispatch per call), which lands on every invoke served by a kNN head; here
    one query against 1,000 samples takes ~0.2 ms. Distances are cosine distances
    ``1 - cos``; a neighbour at distance 0 takes all the weight, as in scikit-learn.
    """

    _CHUNK = 1024  # queries per similarity block: bounds memory at 1024 x n_samples floats

    def __init__(self, n_neighbors: int = 5) -> None:
        if n_neighbors < 1:
            raise ValueError(f"n_neighbors must be at least 1, got {n_neighbors}")
        self.n_neighbors = n_neighbors

    def fit(self, X: np.ndarray, y: np.ndarray) -> CosineKNeighbors:
        """Remember the unit-normalised samples and their label indices."""
        self._samples = _unit_rows(X)
        self.classes_, self._label_index = np.unique(np.asarray(y), return_inverse=True)
        if len(self._samples) != len(self._label_index):
            raise ValueError("X and y have different numbers of samples")
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Per-class share of the neighbours' weights, columns in ``classes_`` order."""
        queries = _unit_rows(X)
        k = min(self.n_neighbors, len(self._samples))
        n_classes = len(self.classes_)
        out = np.empty((len(queries), n_classes), dtype=np.float64)
        for start in range(0, len(queries), self._CHUNK):
            similarity = queries[start : start + self._CHUNK] @ self._samples.T
            nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            distance = 1.0 - np.take_along_axis(similarity, nearest, axis=1).astype(np.float64)
            np.maximum(distance, 0.0, out=distance)
            exact = distance == 0.0
            with np.errstate(divide="ignore"):
                weight = np.where(exact.any(axis=1, keepdims=True), exact, 1.0 / distance)
            rows = np.arange(len(nearest))[:, None] * n_classes
            flat = (rows + self._label_index[nearest]).ravel()
            votes = np.bincount(flat, weights=weight.ravel(), minlength=len(nearest) * n_classes)
            votes = votes.reshape(len(nearest), n_classes)
            out[start : start + len(nearest)] = votes / votes.sum(axis=1, keepdims=True)
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The label with the largest neighbour weight."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _unit_rows(X: np.ndarray) -> np.ndarray:
    """``X`` as float32 rows scaled to unit length (all-zero rows stay zero)."""
    rows = np.asarray(X, dtype=np.float32)
    if rows.ndim != 2:
        raise ValueError(f"expected a 2-d array, got shape {rows.shape}")
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


class KNeighborsFamily:
    """Distance-weighted cosine kNN (:class:`CosineKNeighbors`): no training, copes with
    multi-modal labels.

    k grows with the square root of the training size (a classic bias/variance compromise),
    capped so prediction stays cheap and never asks for more neighbours than there are samples.

    Exact kNN costs grow with the sample count: every invoke compares against every sample, and
    cross-validating it is quadratic (235 of the 277 s ``train_head`` took on 1e5 samples in
    ``bench/retrain_cost.py --full`` before this limit).
    Beyond ``max_train_samples`` the family steps aside: logistic regression serves in constant
    time and has the data to fit sharp boundaries by then.
    """

    name = "knn"
    max_k = 25
    max_train_samples = 20_000

    def build(self, params: Mapping[str, Any]) -> Classifier:
        return CosineKNeighbors(n_neighbors=int(params.get("n_neighbors", 5)))

    def grid(self, shape: DataShape) -> list[dict[str, Any]]:
        if shape.n_train > self.max_train_samples:
            return []
        k = min(self.max_k, max(3, round(math.sqrt(shape.n_train))), shape.n_train)
        return [{"n_neighbors": k}]


class CalibratedLinearSVMFamily:
    """Linear SVM with sigmoid (Platt) calibration fitted by an inner stratified CV.

    The inner CV needs at least two samples of every label in each training split; when a label is
    rarer than that the family proposes nothing rather than a model that would fail or lie.
    liblinear fits one-vs-rest and the calibration CV multiplies that by its folds (~1 s per
    5k x 512 x 10-label fit), so beyond ``max_train_samples`` the family also steps aside: at
    that size multinomial logistic regression is as accurate and several times cheaper.
    """

    name = "linear_svm"
    c_grid: tuple[float, ...] = (1.0,)
    max_inner_folds = 3
    max_train_samples = 3000

    def build(self, params: Mapping[str, Any]) -> Classifier:
        svm = LinearSVC(C=float(params.get("C", 1.0)), dual=True, tol=1e-3, max_iter=2000)
        inner_folds = int(params.get("calibration_folds", 2))
        return CalibratedClassifierCV(svm, method="sigmoid", cv=inner_folds)

    def grid(self, shape: DataShape) -> list[dict[str, Any]]:
        inner_folds = min(self.max_inner_folds, shape.min_class_count)
        if inner_folds < 2 or shape.n_train > self.max_train_samples:
            return []
        return [{"C": c, "calibration_folds": inner_folds} for c in self.c_grid]


HEAD_FAMILIES: dict[str, HeadFamily] = {}
"""Registered head families by name, in order of increasing complexity (used for tie-breaks)."""


def register_head_family(family: HeadFamily) -> None:
    """Add (or replace) a head family in the registry.

    Args:
        family: an object with ``name``, ``build(params)`` and ``grid(shape)``.
    """
    HEAD_FAMILIES[family.name] = family


for _family in (LogisticRegressionFamily(), KNeighborsFamily(), CalibratedLinearSVMFamily()):
    register_head_family(_family)


@dataclass(frozen=True)
class Candidate:
    """One point of a head family's grid: plain data that can rebuild an unfitted estimator.

    Attributes:
        name: registered head family name, e.g. ``"logistic_regression"``.
        params: the family's parameters, e.g. ``{"C": 10.0}`` (JSON-safe values).
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    # The label texts a family with ``needs_text_prior`` starts from (learner.few_shot.TextPrior);
    # not part of the recipe's identity: the function's labels supply it again on rebuild.
    prior: Any = field(default=None, compare=False, repr=False)
    # The function's unlabelled traffic vectors a family with ``needs_unlabeled`` also learns
    # from (learner.semi_supervised); like ``prior``, supplied again by the function on rebuild.
    unlabeled: Any = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        """A readable unique identifier such as ``logistic_regression(C=10.0)``."""
        args = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}({args})"

    def build(self) -> Classifier:
        """Return a new, unfitted estimator; raises ``KeyError`` for an unregistered family
        and ``ValueError`` for a family that needs a text prior when there is none."""
        family = HEAD_FAMILIES[self.name]
        if needs_text_prior(family):
            return family.build(self.params, prior=self.prior)  # type: ignore[call-arg]
        if needs_unlabeled(family):
            return family.build(self.params, unlabeled=self.unlabeled)  # type: ignore[call-arg]
        return family.build(self.params)


def needs_text_prior(family: HeadFamily) -> bool:
    """Whether ``family`` starts from the labels' text embeddings (``needs_text_prior = True``):
    it is proposed only for functions whose backbone has a text tower."""
    return bool(getattr(family, "needs_text_prior", False))


def needs_unlabeled(family: HeadFamily) -> bool:
    """Whether ``family`` also learns from unlabelled traffic (``needs_unlabeled = True``): it is
    proposed only when the function has some (see ``applies(shape, traffic)``)."""
    return bool(getattr(family, "needs_unlabeled", False))


def traffic_applies(family: HeadFamily, shape: DataShape, unlabeled: np.ndarray | None) -> bool:
    """Whether ``family`` (one with ``needs_unlabeled``) is worth trying on this much traffic."""
    if unlabeled is None:
        return False
    return bool(family.applies(shape, len(unlabeled)))  # type: ignore[attr-defined]


def with_traffic(
    candidates: list[Candidate], shape: DataShape, unlabeled: np.ndarray | None
) -> list[Candidate]:
    """Explicit ``candidates`` with the traffic given to those that learn from it, dropping
    those the traffic does not justify (the rule :func:`default_candidates` applies)."""
    out = []
    for candidate in candidates:
        family = HEAD_FAMILIES.get(candidate.name)
        if family is None or not needs_unlabeled(family) or candidate.unlabeled is not None:
            out.append(candidate)
        elif traffic_applies(family, shape, unlabeled):
            out.append(replace(candidate, unlabeled=unlabeled))
    return out


def default_candidates(
    shape: DataShape, *, prior: Any = None, unlabeled: np.ndarray | None = None
) -> list[Candidate]:
    """Every registered family's grid for ``shape``, simplest family first.

    Args:
        shape: sizes of the data the candidates will be cross-validated on.
        prior: the labels' text prior (:class:`learner.few_shot.TextPrior`) when the backbone has
            a text tower; families that need one are left out without it.
        unlabeled: ``(m, dim)`` unlabelled traffic vectors of the function; families that learn
            from traffic are left out without them, or where their ``applies`` says so.
    """
    candidates: list[Candidate] = []
    for family in HEAD_FAMILIES.values():
        if needs_text_prior(family) and prior is None:
            continue
        if needs_unlabeled(family) and not traffic_applies(family, shape, unlabeled):
            continue
        candidates += [
            Candidate(
                family.name,
                params,
                prior=prior if needs_text_prior(family) else None,
                unlabeled=unlabeled if needs_unlabeled(family) else None,
            )
            for params in family.grid(shape)
        ]
    return candidates

"""The heads currently serving predictions, swapped atomically, and a ranked-prediction helper.

A :class:`Deployed` bundles a version with its head and labels and is immutable, so publishing a
new model is a single reference assignment in a dict under a lock. A reader holds one
:class:`Deployed` object for the whole request: it sees the old model or the new one, never a
version number from one and a head from the other. The lock is not needed for that (a dict
assignment is atomic in CPython) but keeps the guarantee explicit and portable to free-threaded
builds; it is held only for the assignment or lookup, never during a prediction.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class ServedHead(Protocol):
    """What serving needs from a head: probabilities and their column labels."""

    @property
    def classes_(self) -> np.ndarray: ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Deployed:
    """One deployed model version of a function.

    Attributes:
        version: the model version (what invoke responses report).
        head: a fitted head with ``predict_proba`` and ``classes_``.
        labels: the head's labels, in its probability column order (stored as a tuple).
    """

    version: int
    head: Any
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        # Accept any sequence of labels but store an immutable tuple of str.
        object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))

    @classmethod
    def of(cls, version: int, head: ServedHead) -> Deployed:
        """Build a :class:`Deployed` whose labels are read from ``head.classes_``."""
        return cls(version=version, head=head, labels=tuple(str(c) for c in head.classes_))


class DeployedHeads:
    """Thread-safe map ``function_id -> Deployed`` used by every invoke."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deployed: dict[str, Deployed] = {}

    def get(self, function_id: str) -> Deployed | None:
        """The model serving ``function_id``, or ``None`` (no model yet: zero-shot or error)."""
        with self._lock:
            return self._deployed.get(function_id)

    def swap(self, function_id: str, deployed: Deployed) -> Deployed | None:
        """Publish ``deployed`` for ``function_id`` and return what it replaced (for rollback).

        Args:
            function_id: the function to (re)deploy.
            deployed: the new, fully built model; never mutate it after publishing.
        """
        with self._lock:
            previous = self._deployed.get(function_id)
            self._deployed[function_id] = deployed
            return previous

    def remove(self, function_id: str) -> Deployed | None:
        """Stop serving ``function_id``; return the removed model, or ``None`` if there was none."""
        with self._lock:
            return self._deployed.pop(function_id, None)

    def snapshot(self) -> dict[str, Deployed]:
        """A copy of the whole map, e.g. to report deployed versions."""
        with self._lock:
            return dict(self._deployed)


def ranked_predictions(
    head: ServedHead, X: np.ndarray, *, top_k: int | None = None
) -> list[list[tuple[str, float]]]:
    """Labels with their probabilities for each row of ``X``, most confident first.

    Args:
        head: a fitted head with ``predict_proba`` and ``classes_``.
        X: (n_samples, dim) embeddings.
        top_k: keep only the ``top_k`` most probable labels per row (all when ``None``).
    """
    proba = np.asarray(head.predict_proba(np.asarray(X)), dtype=np.float64)
    labels = [str(label) for label in head.classes_]
    # A stable sort on the negated probability keeps ties in classes_ order (deterministic).
    order = np.argsort(-proba, axis=1, kind="stable")
    if top_k is not None:
        order = order[:, : max(0, top_k)]
    return [
        [(labels[column], float(row[column])) for column in columns]
        for row, columns in zip(proba, order, strict=True)
    ]

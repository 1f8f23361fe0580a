"""Few-shot heads that start from the zero-shot head: label texts first, samples correct them.

A plain linear probe on CLIP features needs more than 4 samples per class to catch up with zero-shot
classification on ImageNet (Radford et al. 2021, fig. 6); methods that start from the text
weights never fall below it (Tip-Adapter, Zhang et al. 2022; CLAP, Silva-Rodriguez et al. 2024).
:class:`TextAnchoredLogistic` is of the second kind: multinomial logistic regression whose weights
start at ``logit_scale * text weights`` and are penalised by their squared distance from there,
so with few samples it stays near the zero-shot head and with many it becomes a linear probe.

:class:`TextAnchoredFamily` registers it in the head registry (:mod:`learner.heads`) with a grid
of anchor strengths. It needs the function's :class:`TextPrior` (only backbones with a text tower
have one), so model selection proposes it only when training is given one, and keeps it only
where cross-validation says it wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from learner.calibration import fit_temperature
from learner.heads import register_head_family
from learner.zero_shot import CLIP_LOGIT_SCALE, ZeroShotHead, softmax_rows, unit_length_rows


@dataclass(frozen=True, eq=False)
class TextPrior:
    """The zero-shot weights of a function's labels: what few-shot heads start from.

    Attributes:
        labels: label names, one per row of ``weights``.
        weights: ``(n_labels, dim)`` unit-length text embeddings.
        logit_scale: the zero-shot head's logit scale.
    """

    labels: tuple[str, ...]
    weights: np.ndarray
    logit_scale: float = CLIP_LOGIT_SCALE

    @classmethod
    def of(cls, head: ZeroShotHead) -> TextPrior:
        """The prior of a zero-shot head."""
        labels = tuple(str(label) for label in head.classes_)
        return cls(labels=labels, weights=head.text_weights, logit_scale=head.logit_scale)

    def weights_for(self, classes: Sequence[str]) -> np.ndarray:
        """``(len(classes), dim)`` text rows in the order of ``classes``.

        Raises:
            ValueError: a class has no text weight (a label the prior does not know).
        """
        row_of = {label: i for i, label in enumerate(self.labels)}
        missing = [c for c in classes if str(c) not in row_of]
        if missing:
            raise ValueError(f"the text prior has no weights for labels {missing}")
        return np.asarray(self.weights[[row_of[str(c)] for c in classes]], dtype=np.float64)


class TextAnchoredLogistic:
    """Logistic regression started at and anchored to the zero-shot text weights.

    Minimises ``summed cross-entropy(X W^T) + anchor / 2 * ||W / s - T||^2`` with ``T`` the
    text rows of the classes seen in training and ``s`` the zero-shot logit scale refitted on the
    training samples, by L-BFGS from ``W = s T``. The cross-entropy is summed, not averaged, so
    the prior weighs like a fixed number of samples: it dominates a handful of shots and fades as
    samples accumulate (a Gaussian prior on the weights, MAP estimate). Inputs are unit vectors
    and there is no bias, like CLIP's own zero-shot head.

    Args:
        prior: the function's label texts.
        anchor: pull towards the text weights; large keeps the zero-shot head, small lets the
            samples decide.
        max_iter: L-BFGS iterations.
    """

    def __init__(self, prior: TextPrior, anchor: float = 10.0, max_iter: int = 150) -> None:
        if not anchor > 0:
            raise ValueError(f"anchor must be positive, got {anchor}")
        self.prior = prior
        self.anchor = float(anchor)
        self.max_iter = max_iter

    def fit(self, X: np.ndarray, y: Sequence[str] | np.ndarray) -> TextAnchoredLogistic:
        """Fit on unit-vector embeddings ``X`` and their label names ``y``."""
        features = unit_length_rows(np.asarray(X, dtype=np.float64))
        self.classes_, label_index = np.unique(
            np.asarray([str(label) for label in y], dtype=object), return_inverse=True
        )
        text = self.prior.weights_for(list(self.classes_))
        scale = self.prior.logit_scale / fit_temperature(
            softmax_rows(self.prior.logit_scale * features @ text.T), label_index
        )
        onehot = np.eye(len(self.classes_))[label_index]

        def loss_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
            weights = flat.reshape(text.shape)
            log_proba = log_softmax(features @ weights.T, axis=1)
            offset = weights / scale - text
            loss = -np.sum(onehot * log_proba) + self.anchor / 2 * np.sum(offset**2)
            gradient = (np.exp(log_proba) - onehot).T @ features + self.anchor * offset / scale
            return float(loss), gradient.ravel()

        result = minimize(
            loss_and_gradient,
            (scale * text).ravel(),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter},
        )
        self.coef_ = result.x.reshape(text.shape)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, n_classes)`` probabilities, columns in ``classes_`` order."""
        features = unit_length_rows(np.asarray(X, dtype=np.float64))
        return np.exp(log_softmax(features @ self.coef_.T, axis=1))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __repr__(self) -> str:
        return f"TextAnchoredLogistic(anchor={self.anchor:g})"


class TextAnchoredFamily:
    """Head family of :class:`TextAnchoredLogistic`, proposed only with a text prior.

    The grid spans "the zero-shot head, recalibrated" (anchor 1000) to "close to a linear probe"
    (1), so cross-validation can also fall back on the texts when the samples add nothing. The
    family steps aside beyond ``max_train_samples``: by then plain logistic regression has the
    data, the prior has little left to add, and each L-BFGS fit would cost seconds.
    """

    name = "text_anchored_logistic"
    needs_text_prior = True
    anchor_grid: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0)
    max_train_samples = 2000

    def build(self, params: Mapping[str, Any], prior: TextPrior | None = None) -> Any:
        if prior is None:
            raise ValueError(f"{self.name} needs the labels' text prior (a backbone with text)")
        return TextAnchoredLogistic(prior, anchor=float(params.get("anchor", 10.0)))

    def grid(self, shape: Any) -> list[dict[str, Any]]:
        if shape.n_train > self.max_train_samples:
            return []
        return [{"anchor": anchor} for anchor in self.anchor_grid]


register_head_family(TextAnchoredFamily())

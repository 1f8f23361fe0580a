"""Preset heads: a pretrained classifier serving as version 0, no labelled sample needed.

The ``imagenet`` preset answers over the 1,000 ImageNet-1k classes, named as open_clip names them
(``IMAGENET_CLASSNAMES``: "tabby cat", "Egyptian Mau"; readable, and the names CLIP's own
zero-shot classifier was tuned with). Two sources give the same head shape:

* a backbone trained on ImageNet ships its 1,000-way linear classifier (EfficientNet-Lite0): the
  logits are ``W f + b`` on the pooled features ``f``; winnow keeps only ``f / |f|``, so the head
  multiplies the unit vector by the features' typical length (the backbone measures it) and adds
  the bias. Without the bias the ranking would not depend on that length at all; with it, the
  length only matters where two classes are within ``|b_i - b_j|`` of each other;
* a CLIP backbone's text tower embeds every class name through the prompt templates, as
  :mod:`learner.zero_shot` does for a function's own labels, and scores scaled cosines (CLIP's
  logit scale 100, no bias).

Either way the head is ``softmax(unit(X) @ coef_.T + intercept_)``. A subset of the classes keeps
only their rows: a softmax over those logits is exactly the full softmax restricted to them and
renormalised. The head follows the scikit-learn contract, so serving, capture, the deploy rule
and the ONNX export treat it as any head; :meth:`PresetHead.fit` changes nothing (a preset is the
pretrained answer; a trained head must beat it to replace it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

from learner.few_shot import TextPrior
from learner.zero_shot import (
    CLIP_LOGIT_SCALE,
    TEMPLATE_SET,
    LabelText,
    TextEncoder,
    label_text_weights,
    softmax_rows,
    unit_length_rows,
)

PRESET_HEAD = "preset"
"""``head`` (and ``kind``) of a preset model version."""
IMAGENET_PRESET = "imagenet"
PRESETS = (IMAGENET_PRESET,)
"""The presets a function can be created from."""
MIN_PRESET_LABELS = 2  # one class alone would always win with confidence 1


def _unique_names(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` with repeats told apart: the n-th occurrence of a name gets `` (n)`` (open_clip
    names two pairs of ImageNet classes alike: "missile" and "sunglasses")."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    if len(set(unique)) != len(unique):
        raise ValueError("class names still repeat after numbering repeats")
    return tuple(unique)


IMAGENET_NAMES: tuple[str, ...] = tuple(IMAGENET_CLASSNAMES)
"""The ImageNet-1k class names in class index order, as prompts use them (two pairs repeat)."""
IMAGENET_LABELS: tuple[str, ...] = _unique_names(IMAGENET_NAMES)
"""The same names as unique label names: the second "missile" is "missile (2)"."""


class UnknownPresetLabels(ValueError):
    """A subset names classes the preset does not have; ``names`` lists them."""

    def __init__(self, names: Sequence[str], preset: str) -> None:
        self.names = list(names)
        super().__init__(
            f"the {preset} preset has no class named {', '.join(map(repr, self.names))}; "
            "its label names are open_clip's IMAGENET_CLASSNAMES (see GET .../labels of a "
            "function created with the whole preset)"
        )


class PresetHead:
    """``softmax(unit(X) @ coef_.T + intercept_)`` over a preset's classes (or a subset).

    Args:
        labels: class names, the column order of probabilities.
        coef: ``(n_labels, dim)`` weights applied to unit-length vectors.
        intercept: ``(n_labels,)`` biases.
        preset: the preset's name, e.g. ``"imagenet"``.
        source: ``"classifier"`` (the backbone's own head) or ``"zero_shot"`` (its text tower).
    """

    def __init__(
        self,
        labels: Sequence[str],
        coef: np.ndarray,
        intercept: np.ndarray,
        *,
        preset: str,
        source: str,
    ) -> None:
        coef = np.ascontiguousarray(coef, dtype=np.float32)
        intercept = np.asarray(intercept, dtype=np.float32)
        if coef.ndim != 2 or coef.shape[0] != len(labels) or not len(labels):
            raise ValueError(f"need one weight row per label, got {coef.shape}")
        if intercept.shape != (len(labels),):
            raise ValueError(f"need one bias per label, got {intercept.shape}")
        if len(set(labels)) != len(labels):
            raise ValueError("label names must be unique")
        self.classes_ = np.asarray([str(label) for label in labels], dtype=object)
        self.coef_ = coef
        self.intercept_ = intercept
        self.preset = preset
        self.source = source

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """``(n, n_labels)`` logits of the unit-length rows of ``X``.

        The product runs in float32, the weights' own precision (as the original classifier
        does), through ``einsum``'s single-threaded loop rather than BLAS: at 1,000 x 1,280 a
        BLAS product runs on two threads, and on a busy machine its workers spin-wait (see
        :func:`learner.crossval.blas_thread_limit`): bench/preset.py measured 12 ms per vector
        that way against 0.2 ms here.
        """
        rows = unit_length_rows(np.asarray(X, dtype=np.float64)).astype(np.float32)
        logits = np.einsum("nd,kd->nk", rows, self.coef_)
        return logits.astype(np.float64) + self.intercept_.astype(np.float64)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, n_labels)`` probabilities, columns in ``classes_`` order."""
        return softmax_rows(self.decision_function(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable class per row."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def fit(self, X: np.ndarray, y: Sequence[str] | np.ndarray) -> PresetHead:
        """Nothing to fit: the preset is the pretrained classifier as it is."""
        return self

    def text_prior(self) -> TextPrior | None:
        """The class names' text embeddings, for the few-shot heads a training tries (a CLIP
        preset only: its rows are ``logit_scale`` times unit text embeddings); None otherwise."""
        if self.source != "zero_shot":
            return None
        weights = unit_length_rows(self.coef_.astype(np.float64)).astype(np.float32)
        labels = tuple(str(label) for label in self.classes_)
        return TextPrior(labels=labels, weights=weights, logit_scale=CLIP_LOGIT_SCALE)

    def restricted(self, labels: Sequence[str]) -> PresetHead:
        """The head over ``labels`` only (in that order), its probabilities renormalised.

        Args:
            labels: names among ``classes_``, at least :data:`MIN_PRESET_LABELS`, no repeats.

        Raises:
            UnknownPresetLabels: some names are not classes of the preset.
            ValueError: fewer than two labels, or repeats.
        """
        column = {label: i for i, label in enumerate(self.classes_)}
        unknown = [label for label in labels if label not in column]
        if unknown:
            raise UnknownPresetLabels(unknown, self.preset)
        if len(set(labels)) != len(labels):
            raise ValueError("label names must be unique")
        if len(labels) < MIN_PRESET_LABELS:
            raise ValueError(
                f"a preset restricted to {len(labels)} label(s) would always answer the same; "
                f"name at least {MIN_PRESET_LABELS}"
            )
        rows = [column[label] for label in labels]
        return PresetHead(
            list(labels),
            self.coef_[rows],
            self.intercept_[rows],
            preset=self.preset,
            source=self.source,
        )

    def __repr__(self) -> str:
        return f"PresetHead({self.preset}, {self.source}, {len(self.classes_)} labels)"


def imagenet_classifier_head(
    weight: np.ndarray, bias: np.ndarray, *, feature_norm: float
) -> PresetHead:
    """The ImageNet preset from a backbone's own 1,000-way linear classifier.

    Args:
        weight: ``(1000, dim)`` classifier weights, in ImageNet class index order.
        bias: ``(1000,)`` classifier biases.
        feature_norm: the typical length of the pooled features the classifier was trained on
            (the unit vectors winnow stores lost it).
    """
    weight = np.asarray(weight, dtype=np.float64)
    if weight.shape[0] != len(IMAGENET_LABELS):
        raise ValueError(f"an ImageNet classifier has 1000 rows, got {weight.shape[0]}")
    if not feature_norm > 0:
        raise ValueError(f"feature_norm must be positive, got {feature_norm}")
    return PresetHead(
        IMAGENET_LABELS,
        feature_norm * weight,
        np.asarray(bias, dtype=np.float64),
        preset=IMAGENET_PRESET,
        source="classifier",
    )


def imagenet_zero_shot_head(
    encode_text: TextEncoder, labels: Sequence[str] | None = None
) -> PresetHead:
    """The ImageNet preset from a CLIP backbone's text tower: the class names through the prompt
    templates (:data:`learner.zero_shot.TEMPLATE_SET`), scaled cosines at CLIP's logit scale.

    Args:
        encode_text: the backbone's text encoder (unit rows).
        labels: only these classes (label names from :data:`IMAGENET_LABELS`); all when None.
            Only their names are embedded.

    Raises:
        UnknownPresetLabels: ``labels`` names classes ImageNet does not have.
    """
    prompt_of = dict(zip(IMAGENET_LABELS, IMAGENET_NAMES, strict=True))
    chosen = list(IMAGENET_LABELS if labels is None else labels)
    unknown = [label for label in chosen if label not in prompt_of]
    if unknown:
        raise UnknownPresetLabels(unknown, IMAGENET_PRESET)
    weights = label_text_weights(encode_text, [LabelText(prompt_of[label]) for label in chosen])
    head = PresetHead(
        chosen,
        CLIP_LOGIT_SCALE * weights.astype(np.float64),
        np.zeros(len(chosen)),
        preset=IMAGENET_PRESET,
        source="zero_shot",
    )
    return head if labels is None else head.restricted(chosen)


PRESET_TEMPLATES = TEMPLATE_SET
"""The prompt templates of a zero-shot preset (recorded in its model version)."""

"""Zero-shot heads: classify by label names alone, through a CLIP backbone's text tower.

Each label becomes one text embedding, the mean of its name put through an ensemble of prompt
templates (open_clip's ``SIMPLE_IMAGENET_TEMPLATES``: the 7 of OpenAI's 80 ImageNet templates
that CLIP's authors found to do as well as all 80), each prompt's embedding normalised first,
then the mean normalised again (Radford et al. 2021, "prompt ensembling"). A label's
``description``, when given, is embedded as it is and averaged with equal weight into the name's
template mean: the words a user wrote about the class count as much as its name.

The head scores ``logit_scale * cosine(image, label text)`` and applies a softmax: CLIP's trained
logit scale is 100, the default here. :meth:`ZeroShotHead.fit` refits that scale (a temperature,
so the ranking never changes) on whatever labelled samples exist, pulled towards 100 when they are
few. The head follows the scikit-learn contract (``classes_``, ``predict_proba``), so serving,
capture and the deploy rule treat it as any head; it is version 0 of a function's model history.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

from learner.calibration import fit_temperature

ZERO_SHOT_HEAD = "zero_shot"
"""``head`` (and ``kind``) of a zero-shot model version."""
CLIP_LOGIT_SCALE = 100.0
"""The logit scale CLIP learns (its ``logit_scale.exp()`` is clamped at 100)."""
PROMPT_TEMPLATES: tuple[Callable[[str], str], ...] = tuple(SIMPLE_IMAGENET_TEMPLATES)
TEMPLATE_SET = "open_clip.SIMPLE_IMAGENET_TEMPLATES"

TextEncoder = Callable[[list[str]], np.ndarray]
"""Prompts -> ``(n, dim)`` unit rows, e.g. ``ImageEncoder.encode_text``."""


@dataclass(frozen=True)
class LabelText:
    """What a label's text embedding is made of: its name and optional description."""

    name: str
    description: str | None = None

    def prompts(self, templates: Sequence[Callable[[str], str]] = PROMPT_TEMPLATES) -> list[str]:
        """The name through every template, then the description (when not blank)."""
        prompts = [template(self.name) for template in templates]
        if self.description and self.description.strip():
            prompts.append(self.description.strip())
        return prompts


def label_fingerprint(backbone: str, labels: Sequence[LabelText]) -> str:
    """A digest of everything a zero-shot head depends on: it changes iff the head must be rebuilt.

    Args:
        backbone: the function's backbone spec.
        labels: the function's labels (order does not matter).
    """
    content = {
        "backbone": backbone,
        "templates": TEMPLATE_SET,
        "labels": sorted([label.name, label.description or ""] for label in labels),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def label_text_weights(
    encode_text: TextEncoder,
    labels: Sequence[LabelText],
    *,
    templates: Sequence[Callable[[str], str]] = PROMPT_TEMPLATES,
) -> np.ndarray:
    """One unit-length text embedding per label, from one batched call of ``encode_text``.

    Args:
        encode_text: the backbone's text encoder (unit rows).
        labels: the labels, in the order of the rows returned.
        templates: prompt templates taking the label name.

    Returns:
        ``(len(labels), dim)`` float32 unit rows.
    """
    if not labels:
        raise ValueError("a zero-shot head needs at least one label")
    prompts = [label.prompts(templates) for label in labels]
    texts = [p for group in prompts for p in group]
    vectors = unit_length_rows(np.asarray(encode_text(texts), np.float64))
    n_name = len(templates)
    weights = []
    start = 0
    for group in prompts:
        row = unit_length_rows(vectors[start : start + n_name].mean(axis=0, keepdims=True))[0]
        if len(group) > n_name:  # the description, with the weight of the name's whole ensemble
            row = row + vectors[start + n_name]
        weights.append(unit_length_rows(row[None, :])[0])
        start += len(group)
    return np.asarray(weights, dtype=np.float32)


class ZeroShotHead:
    """``softmax(logit_scale * X @ text_weights.T)``: a head made from label texts, no samples.

    Args:
        labels: label names, the column order of probabilities.
        text_weights: ``(n_labels, dim)`` unit rows from :func:`label_text_weights`.
        logit_scale: multiplies cosines before the softmax (CLIP: 100).
        fingerprint: :func:`label_fingerprint` of what the head was built from.
    """

    def __init__(
        self,
        labels: Sequence[str],
        text_weights: np.ndarray,
        *,
        logit_scale: float = CLIP_LOGIT_SCALE,
        fingerprint: str = "",
    ) -> None:
        weights = np.asarray(text_weights, dtype=np.float32)
        if weights.ndim != 2 or weights.shape[0] != len(labels) or not len(labels):
            raise ValueError(f"need one text weight row per label, got {weights.shape}")
        if len(set(labels)) != len(labels):
            raise ValueError("label names must be unique")
        if not logit_scale > 0:
            raise ValueError(f"logit_scale must be positive, got {logit_scale}")
        self.classes_ = np.asarray([str(label) for label in labels], dtype=object)
        self.text_weights = weights
        self.logit_scale = float(logit_scale)
        self.fingerprint = fingerprint

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """``(n, n_labels)`` logits: scaled cosines between the rows of ``X`` and the labels."""
        rows = unit_length_rows(np.asarray(X, dtype=np.float64))
        return self.logit_scale * (rows @ self.text_weights.T.astype(np.float64))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, n_labels)`` probabilities, columns in ``classes_`` order."""
        return softmax_rows(self.decision_function(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The label with the most similar text, per row."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def fit(self, X: np.ndarray, y: Sequence[str] | np.ndarray) -> ZeroShotHead:
        """Refit ``logit_scale`` on labelled samples (the weights stay the label texts).

        A temperature over the current scale is fitted by :func:`fit_temperature` (pulled to
        1, i.e. to the current scale, when samples are few); samples of labels the head does
        not know are ignored. Argmax predictions never change.

        Args:
            X: ``(n, dim)`` embeddings.
            y: label name per sample.
        """
        labels = np.asarray([str(label) for label in y], dtype=object)
        column = {label: i for i, label in enumerate(self.classes_)}
        known = np.array([label in column for label in labels], dtype=bool)
        if known.any():
            true_idx = np.array([column[label] for label in labels[known]], dtype=np.int64)
            proba = self.predict_proba(np.asarray(X)[known])
            self.logit_scale /= fit_temperature(proba, true_idx)
        return self

    def __repr__(self) -> str:
        return f"ZeroShotHead({len(self.classes_)} labels, logit_scale={self.logit_scale:.4g})"


def build_zero_shot_head(
    encode_text: TextEncoder,
    labels: Sequence[LabelText],
    *,
    backbone: str,
    logit_scale: float = CLIP_LOGIT_SCALE,
) -> ZeroShotHead:
    """Embed the labels' texts and return the head (not fitted to any sample yet).

    Args:
        encode_text: the backbone's text encoder.
        labels: the function's labels.
        backbone: the backbone spec (part of the fingerprint).
        logit_scale: initial logit scale.
    """
    weights = label_text_weights(encode_text, labels)
    return ZeroShotHead(
        [label.name for label in labels],
        weights,
        logit_scale=logit_scale,
        fingerprint=label_fingerprint(backbone, labels),
    )


def unit_length_rows(rows: np.ndarray) -> np.ndarray:
    """``rows`` scaled to unit length, in their own dtype (a zero row stays zero)."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Each row of ``logits`` as probabilities (shifted by its maximum for stability)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    return shifted / shifted.sum(axis=1, keepdims=True)

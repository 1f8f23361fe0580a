"""Classification metrics as JSON-safe dicts, calibration error, and a confusion-matrix picture.

Metrics are stored with every trained model version and shown in the API, so they are plain
Python numbers, strings and lists (no numpy scalars) in a stable label order.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

# Text properties for whatever a user named (label names, titles): matplotlib draws it as typed
# instead of parsing "$...$" as math text (a stray "$\\foo{$" raised) or handing it to TeX.
PLAIN_TEXT: dict[str, Any] = {"parse_math": False, "usetex": False}


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro F1, per-label precision/recall/F1/support and the confusion matrix.

    Args:
        y_true: true label per sample.
        y_pred: predicted label per sample.
        labels: every label to report, in display order; labels absent from both sequences get
            zeros (scikit-learn's ``zero_division=0``) rather than NaN.

    Returns:
        ``{"labels", "n_samples", "accuracy", "macro_f1", "per_label": {label: {"precision",
        "recall", "f1", "support"}}, "confusion_matrix"}``; matrix rows are true labels and columns
        predicted labels, both in ``labels`` order.
    """
    true = np.asarray(list(y_true), dtype=object)
    pred = np.asarray(list(y_pred), dtype=object)
    if len(true) != len(pred):
        raise ValueError(f"y_true has {len(true)} samples but y_pred has {len(pred)}")
    label_list = [str(label) for label in labels]
    if not label_list:
        raise ValueError("labels must not be empty")
    n_samples = len(true)
    if n_samples == 0:
        zero = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        return {
            "labels": label_list,
            "n_samples": 0,
            "accuracy": 0.0,
            "macro_f1": 0.0,
            "per_label": {label: dict(zero) for label in label_list},
            "confusion_matrix": [[0] * len(label_list) for _ in label_list],
        }
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=label_list, zero_division=0
    )
    matrix = confusion_matrix(true, pred, labels=label_list)
    return {
        "labels": label_list,
        "n_samples": int(n_samples),
        "accuracy": float(np.mean(true == pred)),
        "macro_f1": float(np.mean(f1)),
        "per_label": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(label_list)
        },
        "confusion_matrix": [[int(count) for count in row] for row in matrix],
    }


def expected_calibration_error(
    proba: np.ndarray, y_true_idx: np.ndarray, n_bins: int = 15
) -> float:
    """Top-label expected calibration error: how far confidence is from accuracy, on average.

    Samples are binned by their top probability into ``n_bins`` equal-width bins on (0, 1]; the
    ECE is the sample-weighted mean of ``|accuracy(bin) - mean confidence(bin)|``. 0 is perfect.

    Args:
        proba: (n_samples, n_labels) predicted probabilities.
        y_true_idx: (n_samples,) column index of each sample's true label.
        n_bins: number of confidence bins.
    """
    probabilities = np.asarray(proba, dtype=np.float64)
    truth = np.asarray(y_true_idx)
    if probabilities.ndim != 2 or len(probabilities) != len(truth):
        raise ValueError("proba must be (n_samples, n_labels) and match y_true_idx")
    if len(truth) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == truth).astype(np.float64)
    # Bin i holds confidences in (i/n, (i+1)/n]; a confidence of exactly 0 joins the first bin.
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    confidence_sums = np.bincount(bins, weights=confidence, minlength=n_bins)
    correct_sums = np.bincount(bins, weights=correct, minlength=n_bins)
    return float(np.abs(correct_sums - confidence_sums).sum() / len(truth))


def confusion_matrix_png(metrics: dict[str, Any], *, title: str = "") -> bytes:
    """Render ``metrics["confusion_matrix"]`` as a PNG with counts in each cell.

    Uses a standalone ``Figure`` on the Agg canvas, so nothing touches pyplot's global state and
    it is safe in a server thread. Long labels are shortened; the size grows with the label count.

    Args:
        metrics: a dict from :func:`classification_metrics` (needs ``labels`` and
            ``confusion_matrix``).
        title: optional title drawn above the matrix.
    """
    labels = [_shorten(str(label)) for label in metrics["labels"]]
    matrix = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError("confusion_matrix must be square and match labels")
    side = min(3.0 + 0.45 * len(labels), 30.0)
    figure = Figure(figsize=(side + 1.5, side), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues", interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    positions = np.arange(len(labels))
    axes.set_xticks(
        positions, labels, rotation=45, ha="right", rotation_mode="anchor", **PLAIN_TEXT
    )
    axes.set_yticks(positions, labels, **PLAIN_TEXT)
    axes.set_xlabel("predicted label")
    axes.set_ylabel("true label")
    if title:
        axes.set_title(title, **PLAIN_TEXT)
    if len(labels) <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for row, col in np.ndindex(*matrix.shape):
            colour = "white" if matrix[row, col] > threshold else "black"
            axes.text(col, row, str(matrix[row, col]), ha="center", va="center", color=colour)
    return figure_png(figure)


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes; glyphs its font lacks (in label names) draw as boxes, quietly."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _shorten(label: str, limit: int = 24) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"

"""Classification metrics against scikit-learn, and the confusion-matrix PNG."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from learner import classification_metrics, confusion_matrix_png

Y_TRUE = ["cat", "cat", "dog", "dog", "dog", "bird", "cat", "bird"]
Y_PRED = ["cat", "dog", "dog", "dog", "cat", "bird", "cat", "cat"]
LABELS = ["bird", "cat", "dog", "fish"]  # "fish" never occurs: reported as zeros


def test_metrics_match_scikit_learn() -> None:
    metrics = classification_metrics(Y_TRUE, Y_PRED, LABELS)

    assert metrics["labels"] == LABELS
    assert metrics["n_samples"] == len(Y_TRUE)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(Y_TRUE, Y_PRED))
    expected_macro = f1_score(Y_TRUE, Y_PRED, labels=LABELS, average="macro", zero_division=0)
    assert metrics["macro_f1"] == pytest.approx(expected_macro)
    precision, recall, f1, support = precision_recall_fscore_support(
        Y_TRUE, Y_PRED, labels=LABELS, zero_division=0
    )
    for i, label in enumerate(LABELS):
        per_label = metrics["per_label"][label]
        assert per_label["precision"] == pytest.approx(precision[i])
        assert per_label["recall"] == pytest.approx(recall[i])
        assert per_label["f1"] == pytest.approx(f1[i])
        assert per_label["support"] == support[i]
    expected_matrix = confusion_matrix(Y_TRUE, Y_PRED, labels=LABELS).tolist()
    assert metrics["confusion_matrix"] == expected_matrix
    assert metrics["per_label"]["fish"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 0,
    }


def test_metrics_are_json_safe_python_types() -> None:
    metrics = classification_metrics(np.array(Y_TRUE), np.array(Y_PRED), LABELS)
    assert json.loads(json.dumps(metrics)) == metrics
    assert type(metrics["accuracy"]) is float
    assert type(metrics["confusion_matrix"][0][0]) is int


def test_metrics_input_checks_and_empty_input() -> None:
    with pytest.raises(ValueError, match="samples"):
        classification_metrics(["a"], [], ["a"])
    empty = classification_metrics([], [], ["a", "b"])
    assert empty["n_samples"] == 0
    assert empty["confusion_matrix"] == [[0, 0], [0, 0]]


def test_confusion_matrix_png_is_a_decodable_png() -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    open_figures = pyplot.get_fignums() if pyplot else None
    metrics = classification_metrics(Y_TRUE, Y_PRED, [*LABELS, "a-rather-long-label-name-" * 3])

    png = confusion_matrix_png(metrics, title="v3 out-of-fold")

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        assert image.format == "PNG"
        assert image.width >= 300 and image.height >= 300
    # No pyplot global state: either pyplot was never imported or no figure was left open.
    pyplot_after = sys.modules.get("matplotlib.pyplot")
    if pyplot_after is None:
        assert pyplot is None
    else:
        assert pyplot_after.get_fignums() == (open_figures or [])


def test_confusion_matrix_png_rejects_mismatched_matrix() -> None:
    with pytest.raises(ValueError):
        confusion_matrix_png({"labels": ["a", "b"], "confusion_matrix": [[1]]})

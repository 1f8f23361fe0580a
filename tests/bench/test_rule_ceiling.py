"""The rule-ceiling bench's rankings and precision/recall curves on synthetic vectors."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from bench.rule_ceiling import THRESHOLDS, precision_recall, rankings


def test_every_ranking_puts_the_examples_class_first() -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 16))
    labels = np.repeat(np.arange(4), 60)
    points = centres[labels] + 0.5 * rng.standard_normal((240, 16))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    examples, traffic, queries = points[labels == 0][:5], points[::2], points[1::2]
    relevant = labels[1::2] == 0
    for name, rank in rankings(examples, traffic).items():
        assert roc_auc_score(relevant, rank(queries)) > 0.9, name


def test_precision_recall_at_every_threshold() -> None:
    scores = np.asarray([0.9, 0.3, 0.2])
    precision, recall = precision_recall(scores, np.asarray([True, False, True]))
    at_half = int(np.searchsorted(THRESHOLDS, 0.5))
    assert precision[at_half] == 1.0 and recall[at_half] == 0.5
    assert precision[0] == 2 / 3 and recall[0] == 1.0  # everything captured
    assert precision[-1] == 1.0 and recall[-1] == 0.0  # nothing captured

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


def test_oracle_recalls_tables_every_ranking_and_class() -> None:
    from types import SimpleNamespace

    rng = np.random.default_rng(1)
    centres = rng.standard_normal((3, 16))

    def split(count: int) -> SimpleNamespace:
        labels = np.repeat(np.asarray(["a", "b", "c"]), count // 3)
        points = centres[np.searchsorted(["a", "b", "c"], labels)]
        points = points + 0.3 * rng.standard_normal(points.shape)
        return SimpleNamespace(
            vectors=points / np.linalg.norm(points, axis=1, keepdims=True), labels=labels
        )

    import bench.rule_ceiling as rule_ceiling

    data = SimpleNamespace(pool=split(2400), val=split(300))
    table = rule_ceiling.oracle_recalls(data, seeds=1)

    assert set(table) == {"mean_similarity", "centred", "query_expansion", "diffusion"}
    row = table["mean_similarity"]
    assert set(row["oracle_recall_per_class"]) == {"a", "b", "c"}
    assert row["oracle_recall"] > 0.9 and row["shared_precision"] >= 0.9

"""B13's tuned-serving rows: served vectors and answers against fp32's, and the cost estimate."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bench import report
from bench.tuned_serving import parity


class Identity:
    def activations(self, batch: torch.Tensor) -> torch.Tensor:
        return batch


def unit(rows: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(rows, dim=1).numpy()


def test_parity_counts_changed_answers_and_the_accuracy_they_cost() -> None:
    head = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    model = SimpleNamespace(head=head, classes_=np.asarray(["a", "b"], dtype=object))
    test = torch.tensor([[1.0, 0.1], [0.1, 1.0], [1.0, 0.9], [0.2, 1.0]])
    reference = unit(test)
    nudged = SimpleNamespace(run=lambda x: unit(x + torch.tensor([0.0, 0.2])))  # row 3 flips
    truth = np.asarray(["a", "b", "a", "b"], dtype=object)

    result = parity(model, nudged, Identity(), reference, test, truth)

    assert result["agreement"] == pytest.approx(0.75)
    assert result["fp32_accuracy"] == 1.0 and result["accuracy"] == pytest.approx(0.75)
    assert 0.98 < result["min_cosine"] < 1.0


def test_a_row_fails_when_serving_is_slow_or_answers_lose_accuracy() -> None:
    def result(ratio: float, accuracy: float) -> dict:
        return {
            "runtime": "onnx",
            "frozen_serves": "onnx-int8",
            "tuned_serves": "onnx-int8",
            "min_cosine": 0.99,
            "agreement": 0.99,
            "accuracy": accuracy,
            "fp32_accuracy": 0.82,
            "serving": {"ratio": ratio, "tuned_images_per_s": 1.0, "frozen_images_per_s": 1.0},
            "serving_fp32": {"ratio": 0.3},
        }

    bench = {
        "backbone": "efficientnet-lite0",
        "tuned_blocks": 13,
        "budget": 500,
        "epochs": 2,
        "tuning": {"seconds": 10.0, "estimated_seconds": 12.0, "seconds_per_image_epoch": 0.04},
        "test": 2000,
        "machine": {"cpu": "x", "cpu_flags": ["avx2"]},
        "targets": {"serving_ratio": 0.7, "accuracy_drop_pt": 0.5},
        "results": [result(0.94, 0.818), result(0.6, 0.82), result(0.94, 0.81)],
    }
    rows = report.tuned_serving_rows(bench)
    assert [row[3] for row in rows] == ["pass", "**fail**", "**fail**", "—"]
    assert "tuned onnx-int8: 0.94" in rows[0][1]
    assert rows[3][1] == "12 s (40 ms per image and epoch) / 10 s: 1.20"

"""B6 runs end to end on a tiny synthetic set: flips, detection against cleanlab, review rounds."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bench import label_errors, report
from bench.data import CLASS_NAMES, Split


def synthetic_split(n: int, seed: int) -> Split:
    """``n`` unit vectors in 16 dimensions around one fixed centre per Fashion-MNIST class (the
    B6 and B11 tests' stand-in for embedded images)."""
    centres = np.random.default_rng(0).normal(size=(len(CLASS_NAMES), 16))
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, len(CLASS_NAMES), n)
    vectors = centres[classes] + rng.normal(scale=0.9, size=(n, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Split(vectors.astype(np.float32), np.asarray(CLASS_NAMES)[classes], np.arange(n))


def test_flips_hit_the_rate_and_lookalikes_stay_among_partners() -> None:
    labels = synthetic_split(500, 1).labels
    for mode in ("uniform", "lookalike"):
        noisy, flipped = label_errors.flip_labels(labels, mode, np.random.default_rng(0))
        assert flipped.sum() == 50 and np.all(noisy[~flipped] == labels[~flipped])
    assert all(noisy[i] in label_errors.LOOKALIKES[labels[i]] for i in np.flatnonzero(flipped))


def test_bench_compares_with_cleanlab_and_recovers_accuracy(tmp_path: Path) -> None:
    pytest.importorskip("cleanlab")
    data = SimpleNamespace(
        pool=synthetic_split(400, 2),
        test=synthetic_split(300, 3),
        describe=lambda: {"dataset": "synthetic"},
    )
    args = label_errors.parse_args(
        ["--seeds", "0", "--samples", "300", "--budget", "20", "--rounds", "3"]
        + ["--output", str(tmp_path / "b6.json")]
    )
    result = label_errors.run(data, args)

    for mode in ("uniform", "lookalike"):
        summary = result["modes"][mode]["summary"]
        assert summary["winnow_f1"]["mean"] > 0.5, summary
        assert 0 <= summary["cleanlab_f1"]["mean"] <= 1
        assert summary["self_confidence_auroc"]["mean"] > 0.7
        seed = result["modes"][mode]["per_seed"][0]
        assert seed["review"]["rounds"] and seed["review"]["rounds"][0]["reviewed"] <= 20
        assert seed["review"]["remaining_errors"] < 30  # 10% of 300 were flipped
    rows = report.b6_rows(json.loads(json.dumps(result)))
    assert len(rows) == 4 and all(row[3] in ("pass", "**fail**", "—") for row in rows)

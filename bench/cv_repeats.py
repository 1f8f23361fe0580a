"""Would model selection on small data choose better over several shuffles of the folds?

Random labels from the Fashion-MNIST pool (see :mod:`bench.data`), 20, 40 and 80 of them, with the
next 2,000 inputs of the stream as unlabelled traffic; candidates: the logistic grid and the
semi-supervised one (:mod:`learner.semi_supervised`). Each candidate is cross-validated on 5
shuffles of the folds; the one chosen with the first shuffle alone, with 3 and with 5 (mean
accuracy, first listed on a tie) is refitted on all labels and scored on the validation split
(this tunes a selection rule, so the test split is not used). References: the logistic grid
alone, one shuffle (labels only), and a semi-supervised head fitted without any selection.
``learner.train_head`` cross-validates once: five shuffles did not choose consistently better here
(see docs/models.md).

Usage (from the repository root)::

    python -m bench.cv_repeats            # 10 seeds; writes bench/results/cv_repeats.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.data import load_benchmark_data  # noqa: E402
from bench.results_file import write_result  # noqa: E402
from learner import Candidate, assign_folds, cross_validated_predictions  # noqa: E402
from learner.heads import LogisticRegressionFamily  # noqa: E402
from learner.semi_supervised import SpreadingFamily  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BUDGETS = (20, 40, 80)
TRAFFIC = 2000
SHUFFLES = 5


def run_seed(vectors: np.ndarray, labels: np.ndarray, val: Any, seed: int) -> dict[str, Any]:
    order = np.random.default_rng(seed).permutation(len(labels))
    out: dict[str, Any] = {}
    for budget in BUDGETS:
        X, y = vectors[order[:budget]], labels[order[:budget]].astype(object)
        traffic = vectors[order[budget : budget + TRAFFIC]]
        logistic = [
            Candidate("logistic_regression", {"C": c}) for c in LogisticRegressionFamily.c_grid
        ]
        spreading = [
            Candidate("label_spreading", {"C": c}, unlabeled=traffic)
            for c in SpreadingFamily.c_grid
        ]
        candidates = logistic + spreading
        on_val = {
            c.key: float(np.mean(c.build().fit(X, y).predict(val.vectors) == val.labels))
            for c in candidates
        }
        cv: dict[str, list[float]] = {c.key: [] for c in candidates}
        for shuffle in range(SHUFFLES):
            folds = assign_folds(y, seed=seed + 7919 * shuffle)
            scored = folds >= 0
            for c in candidates:
                pred, _ = cross_validated_predictions(c, X, y, folds)
                cv[c.key].append(float(np.mean(pred[scored] == y[scored])))

        out[str(budget)] = {
            "labels_only_1_shuffle": chosen(logistic, 1, cv, on_val),
            **{
                f"with_traffic_{n}_shuffles": chosen(candidates, n, cv, on_val)
                for n in (1, 3, SHUFFLES)
            },
            "spreading_unselected": on_val[spreading[-1].key],
        }
    return out


def chosen(
    pool: list[Candidate], shuffles: int, cv: dict[str, list[float]], on_val: dict[str, float]
) -> float:
    """Validation accuracy of the candidate with the best mean CV accuracy over the first
    ``shuffles`` shuffles (the first listed on a tie, as ``train_head``)."""
    best = max(
        pool, key=lambda c: (round(float(np.mean(cv[c.key][:shuffles])), 12), -pool.index(c))
    )
    return on_val[best.key]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--output", type=Path, default=RESULTS / "cv_repeats.json")
    args = parser.parse_args(argv)
    data = load_benchmark_data(3000, 1000, 1000)
    seeds = [run_seed(data.pool.vectors, data.pool.labels, data.val, s) for s in args.seeds]
    summary = {
        str(b): {arm: float(np.mean([s[str(b)][arm] for s in seeds])) for arm in seeds[0][str(b)]}
        for b in BUDGETS
    }
    report = {
        "benchmark": "cv_repeats",
        "config": {"seeds": args.seeds, "budgets": list(BUDGETS), "traffic": TRAFFIC},
        "data": data.describe(),
        "evaluated_on": "validation",
        "summary": summary,
        "seeds": seeds,
    }
    write_result(args.output, report)
    for budget, arms in summary.items():
        print(budget, "  ".join(f"{arm} {value * 100:.1f}%" for arm, value in arms.items()))
    return report


if __name__ == "__main__":
    main()

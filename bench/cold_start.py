"""B5: cold start from traffic - are the first labels from winnow's queue better than random ones?

Fashion-MNIST embedded by ``efficientnet-lite0`` (no text tower, so no zero-shot head: see
:mod:`bench.data`) is replayed as production traffic to a function with no labels at all
(:func:`bench.capture_sim.run_capture` with ``cold_start=0``). Until the first head exists, inputs
go through cold-start capture (typical members of uncovered regions of recent traffic, see
:mod:`capture.cold_start`); the oracle annotates the queue, the head is retrained after every 10
annotations (the scheduler's default ``retrain_min_annotations``) and winnow's policy captures from
then on. Compared at 10, 20, 40 and 80 labels with:

* ``random``: the first ``n`` inputs of the same stream labelled;
* ``typiclust_offline``: a reference invoke capture cannot be: TypiClust over the whole pool at
  once (k-means into ``n`` clusters, the most typical member of each).

Accuracy is that of ``learner.train_head`` (logistic grid) on the labels, on the test split; with
``--traffic on`` (the default, as the service trains) winnow's heads may also learn from the
stream's recent traffic (:mod:`learner.semi_supervised`), the baselines' never do.

The rules row: a rule with 5 example images of one class (drawn from the pool), in traffic of all
classes (the test split, through :class:`capture.CaptureController`), for every class and seed:
precision and recall of its ``rule:<name>`` captures at the default similarity. ``--tune-rules``
prints the same figures on the validation split for a grid of similarities (how the default in
:mod:`capture.rules` was chosen); ``--rules-only`` recomputes just the rules section of an existing
result file (the streamed runs take ~10 minutes and do not use rules).

Usage (from the repository root)::

    python -m bench.cold_start                      # pool 5000, test 2000, 5 seeds
    python -m bench.cold_start --seeds 0 1 2 3 4 5 6 7 8 9
    python -m bench.cold_start --tune-rules         # rules similarity grid on the val split
    python -m bench.cold_start --rules-only         # refresh only the rules row of the result

Writes ``bench/results/cold_start.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/cold_start.py``
    sys.path.insert(0, str(ROOT))

from bench.capture_sim import run_capture, trainable  # noqa: E402
from bench.data import BenchmarkData, Split, load_benchmark_data  # noqa: E402
from bench.label_efficiency import summarise  # noqa: E402
from bench.results_file import write_result  # noqa: E402
from capture import CaptureController, CapturePolicy, VectorIndex  # noqa: E402
from capture.rules import DEFAULT_RULE_SIMILARITY, CaptureRule  # noqa: E402
from learner import Candidate, TrainResult, train_head  # noqa: E402
from learner.heads import LogisticRegressionFamily  # noqa: E402
from learner.semi_supervised import SpreadingFamily  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BUDGETS = (10, 20, 40, 80)
ROUND = 10  # annotations between retrains (the scheduler's default threshold)
HEADS = [Candidate("logistic_regression", {"C": c}) for c in LogisticRegressionFamily.c_grid]
TRAFFIC_HEADS = HEADS + [Candidate("label_spreading", {"C": c}) for c in SpreadingFamily.c_grid]
RULE_EXAMPLES = 5
TUNING_GRID = (0.6, 0.65, 0.68, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75, 0.8, 0.85)


def accuracy(result: TrainResult | None, labelled: np.ndarray, split: Split) -> float:
    """Test accuracy; with one class labelled (no head can be trained) that class is answered."""
    if result is None:
        values, counts = np.unique(labelled, return_counts=True)
        return float(np.mean(split.labels == values[np.argmax(counts)]))
    return float(np.mean(result.head.predict(split.vectors) == split.labels))


def _fit(data: BenchmarkData, chosen: np.ndarray, seed: int) -> TrainResult | None:
    picked = data.pool.labels[chosen]
    if not trainable(picked):
        return None
    return train_head(data.pool.vectors[chosen], picked, seed=seed, candidates=HEADS)


def typiclust_offline(vectors: np.ndarray, budget: int, seed: int, knn: int = 20) -> np.ndarray:
    """TypiClust's picks from a whole pool: ``budget`` k-means clusters, the member of each with
    the highest typicality (inverse mean distance to its ``knn`` nearest neighbours)."""
    kmeans = faiss.Kmeans(vectors.shape[1], budget, niter=25, seed=seed, spherical=True)
    kmeans.train(np.ascontiguousarray(vectors, dtype=np.float32))
    assigned = kmeans.index.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)[1][:, 0]
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    similarities, _ = index.search(np.ascontiguousarray(vectors, dtype=np.float32), knn + 1)
    typicality = 1.0 / np.maximum(np.mean(1.0 - similarities[:, 1:], axis=1), 1e-6)
    picks = []
    for cluster in range(budget):
        members = np.flatnonzero(assigned == cluster)
        if len(members):
            picks.append(int(members[np.argmax(typicality[members])]))
    return np.asarray(picks, dtype=np.int64)


def run_seed(
    data: BenchmarkData,
    seed: int,
    policy: CapturePolicy,
    refit_lag: int | None = None,
    traffic: bool = True,
) -> dict[str, Any]:
    """Every strategy on one stream; curves keyed by label count."""
    started = time.perf_counter()
    order = np.random.default_rng(seed).permutation(len(data.pool.labels))
    checkpoints = list(range(ROUND, max(BUDGETS) + 1, ROUND))
    curves: dict[str, dict[int, float]] = {"random": {}, "winnow": {}, "typiclust_offline": {}}
    for budget in BUDGETS:
        chosen = order[:budget]
        result = _fit(data, chosen, seed)
        curves["random"][budget] = accuracy(result, data.pool.labels[chosen], data.test)
        picks = typiclust_offline(data.pool.vectors, budget, seed)
        result = _fit(data, picks, seed)
        curves["typiclust_offline"][budget] = accuracy(result, data.pool.labels[picks], data.test)
    reasons: dict[int, dict[str, int]] = {}

    def record(count: int, result: TrainResult | None, labelled: np.ndarray) -> None:
        curves["winnow"][count] = accuracy(result, data.pool.labels[labelled], data.test)

    log = run_capture(
        data.pool.vectors,
        data.pool.labels,
        order,
        policy,
        cold_start=0,
        checkpoints=checkpoints,
        seed=seed,
        items_per_hour=360.0,
        candidates=TRAFFIC_HEADS if traffic else HEADS,
        on_checkpoint=record,
        reasons_at=reasons,
        refit_lag=refit_lag,
    )
    return {
        "seed": seed,
        "curves": curves,
        "stream": log.summary(),
        "reasons_by_labels": {str(k): v for k, v in reasons.items()},
        "seconds": time.perf_counter() - started,
    }


def rule_captures(
    data: BenchmarkData, traffic: Split, label: str, seed: int, similarity: float | None
) -> dict[str, Any]:
    """Precision and recall of one rule (5 pool examples of ``label``) over ``traffic``."""
    rng = np.random.default_rng(seed)
    examples = rng.choice(np.flatnonzero(data.pool.labels == label), RULE_EXAMPLES, replace=False)
    rule = CaptureRule("look-alike", tuple(f"s{i}" for i in examples), similarity=similarity)
    rule = rule.with_vectors(data.pool.vectors[examples])
    policy = dataclasses.replace(
        CapturePolicy(), rules=(rule,), max_per_hour=10**9, max_per_day=10**9
    )
    controller = CaptureController(policy, rng=np.random.default_rng(seed + 1))
    index = VectorIndex(traffic.vectors.shape[1], background_rebuild=False)
    captured = np.zeros(len(traffic.labels), dtype=bool)
    confident = np.array([1.0, 0.0])  # a head sure of everything: only the rule captures
    for position, vector in enumerate(traffic.vectors):
        decision = controller.decide(confident, ["a", "b"], vector, index, {"a": 99, "b": 99})
        if decision.reason == "rule:look-alike":
            controller.commit(decision)
            captured[position] = True
            index.add([position], vector[None, :], "pending")
        else:
            controller.rollback(decision)
    relevant = traffic.labels == label
    return {
        "label": label,
        "captures": int(captured.sum()),
        "precision": float(relevant[captured].mean()) if captured.any() else 1.0,
        "recall": float(captured[relevant].mean()),
    }


def rules_row(
    data: BenchmarkData, traffic: Split, seeds: list[int], similarity: float | None
) -> dict[str, Any]:
    runs = [
        rule_captures(data, traffic, str(label), seed * 100 + i, similarity)
        for seed in seeds
        for i, label in enumerate(np.unique(data.pool.labels))
    ]
    return {
        "similarity": DEFAULT_RULE_SIMILARITY if similarity is None else similarity,
        "precision": summarise([r["precision"] for r in runs]),
        "recall": summarise([r["recall"] for r in runs]),
        "worst_class_precision": min(
            float(np.mean([r["precision"] for r in runs if r["label"] == c]))
            for c in {r["label"] for r in runs}
        ),
        "runs": runs,
    }


def aggregate(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    per_budget = {
        name: {str(b): summarise([s["curves"][name][b] for s in seeds]) for b in BUDGETS}
        for name in seeds[0]["curves"]
    }
    gaps = {
        str(b): per_budget["winnow"][str(b)]["mean"] - per_budget["random"][str(b)]["mean"]
        for b in BUDGETS
    }
    return {
        "accuracy": per_budget,
        "winnow_minus_random": gaps,
        "targets": {
            "5pt_above_random_at_10_and_20": bool(gaps["10"] >= 0.05 and gaps["20"] >= 0.05),
            "never_below_random": bool(min(gaps.values()) >= 0.0),
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=5000)
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--tune-rules", action="store_true", help="similarity grid on val")
    parser.add_argument(
        "--rules-only", action="store_true", help="recompute only the rules of --output"
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "cold_start.json")
    parser.add_argument(
        "--refit-lag",
        type=int,
        default=None,
        help="cold-start refits by a worker, landing N inputs late (default: inline)",
    )
    parser.add_argument(
        "--traffic",
        choices=("on", "off"),
        default="on",
        help="winnow's heads also learn from the stream's recent traffic (on: as the service)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = load_benchmark_data(args.pool, args.val, args.test)
    if args.tune_rules:
        for similarity in TUNING_GRID:
            row = rules_row(data, data.val, args.seeds, similarity)
            print(
                f"similarity {similarity:.2f}: precision {row['precision']['mean']:.3f} "
                f"(worst class {row['worst_class_precision']:.3f}), recall "
                f"{row['recall']['mean']:.3f}"
            )
        return {}
    if args.rules_only:
        report = json.loads(args.output.read_text())
        report["rules"] = rules_section(data, args.seeds)
        write_result(args.output, report)
        print_table(report)
        return report
    policy = CapturePolicy()
    seeds = []
    for seed in args.seeds:
        seeds.append(run_seed(data, seed, policy, args.refit_lag, args.traffic == "on"))
        print(f"seed {seed}: {seeds[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    report = {
        "benchmark": "cold_start",
        "config": {
            "seeds": args.seeds,
            "budgets": list(BUDGETS),
            "retrain_every": ROUND,
            "refit_lag": args.refit_lag,
            "traffic": args.traffic,
        },
        "data": data.describe(),
        "machine": platform.platform(),
        "summary": aggregate(seeds),
        "rules": rules_section(data, args.seeds),
        "seeds": [
            {
                **s,
                "curves": {n: {str(c): v for c, v in cv.items()} for n, cv in s["curves"].items()},
            }
            for s in seeds
        ],
        "seconds": time.perf_counter() - started,
    }
    write_result(args.output, report)
    print_table(report)
    return report


def rules_section(data: BenchmarkData, seeds: list[int]) -> dict[str, Any]:
    """The rules row on the test split at the default similarity, plus the validation grid."""
    rules = rules_row(data, data.test, seeds, None)
    tuning = {
        str(similarity): {
            k: v for k, v in rules_row(data, data.val, seeds, similarity).items() if k != "runs"
        }
        for similarity in TUNING_GRID
    }
    return {
        **{k: v for k, v in rules.items() if k != "runs"},
        "examples": RULE_EXAMPLES,
        "targets": {
            "precision_at_least_0.9": rules["precision"]["mean"] >= 0.9,
            "recall_at_least_0.5": rules["recall"]["mean"] >= 0.5,
        },
        "runs": rules["runs"],
        "validation_grid": tuning,
    }


def print_table(report: dict[str, Any]) -> None:
    summary = report["summary"]["accuracy"]
    print(f"\ntest accuracy (%), mean ± std over {len(report['seeds'])} seeds")
    print(f"{'labels':>7} " + " ".join(f"{name:>18}" for name in summary))
    for budget in BUDGETS:
        cells = [summary[name][str(budget)] for name in summary]
        print(
            f"{budget:>7} "
            + " ".join(f"{c['mean'] * 100:>10.1f} ± {c['std'] * 100:>4.1f}" for c in cells)
        )
    print(f"targets: {report['summary']['targets']}")
    rules = report["rules"]
    print(
        f"rule ({rules['examples']} examples, similarity {rules['similarity']}): precision "
        f"{rules['precision']['mean']:.3f} ± {rules['precision']['std']:.3f}, recall "
        f"{rules['recall']['mean']:.3f} ± {rules['recall']['std']:.3f}; {rules['targets']}"
    )


if __name__ == "__main__":
    main()

"""Search: does the nearest labelled sample share a held-out image's class as often as the
deployed head predicts it right?

Fashion-MNIST (Debian package) embedded by ``efficientnet-lite0`` (see :mod:`bench.data`). Per
seed, ``--labelled`` images drawn from the pool are the function's labelled samples; the head is
trained on them as a retrain does (:func:`learner.train_head`, the service's default candidate
grid, cross-validated and temperature-scaled). Each of the ``--test`` held-out images (t10k file)
is then both searched and invoked:

* search agreement: the top search hit's label equals the image's class. Search ranks labelled
  samples by :func:`service.search.search_scores` (cosine similarity of L2-normalised
  embeddings plus ``MODEL_WEIGHT`` times the head's probability of the sample's label), the same
  function the service calls; the plain-similarity ranking is reported beside it;
* head accuracy: the head's most probable label equals the image's class (what invoke answers).

The target is ``search agreement / head accuracy >= 1`` (mean over seeds; min and max shown).
``MODEL_WEIGHT`` was chosen on seeds 0-2, so the default run reports seeds 3-7.

Usage (from the repository root)::

    python -m bench.search    # 2000 labelled drawn from a 3000 pool, 1000 test, seeds 3-7
    python -m bench.search --labelled 1000 --seeds 0 1 2

Writes ``bench/results/search.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/search.py``
    sys.path.insert(0, str(ROOT))

from bench.data import BenchmarkData, load_benchmark_data  # noqa: E402
from bench.label_efficiency import summarise as spread  # noqa: E402
from bench.results_file import write_result  # noqa: E402
from learner import ranked_predictions, train_head  # noqa: E402
from service.search import search_scores  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as search does before ranking."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def top_hit_labels(
    queries: np.ndarray,
    samples: np.ndarray,
    labels: np.ndarray,
    query_proba: np.ndarray | None = None,
    classes: list[str] | None = None,
) -> np.ndarray:
    """The label of each query's top search hit (ties to the first sample): by cosine similarity
    alone, or, given the head's ``query_proba`` over ``classes``, by the service's search score."""
    similarities = unit_rows(queries) @ unit_rows(samples).T
    if query_proba is None or classes is None:
        return labels[np.argmax(similarities, axis=1)]
    column = {name: i for i, name in enumerate(classes)}
    sample_proba = query_proba[:, [column[label] for label in labels]]
    scores = np.stack(
        [search_scores(row, proba) for row, proba in zip(similarities, sample_proba, strict=True)]
    )
    return labels[np.argmax(scores, axis=1)]


def run_seed(data: BenchmarkData, labelled: int, seed: int) -> dict[str, Any]:
    """Draw the labelled set, train the head, compare search and head on the test split."""
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(data.pool.labels), size=labelled, replace=False)
    vectors, labels = data.pool.vectors[picked], data.pool.labels[picked]
    started = time.perf_counter()
    result = train_head(vectors, labels, seed=seed)
    train_seconds = time.perf_counter() - started
    predicted = np.asarray(
        [ranked[0][0] for ranked in ranked_predictions(result.head, data.test.vectors, top_k=1)]
    )
    proba = np.asarray(result.head.predict_proba(data.test.vectors))
    classes = [str(c) for c in result.head.classes_]
    started = time.perf_counter()
    hits = top_hit_labels(data.test.vectors, vectors, labels, proba, classes)
    search_ms = (time.perf_counter() - started) * 1000 / len(hits)
    similarity_hits = top_hit_labels(data.test.vectors, vectors, labels)
    search_agreement = float(np.mean(hits == data.test.labels))
    head_accuracy = float(np.mean(predicted == data.test.labels))
    return {
        "seed": seed,
        "search_top1_agreement": search_agreement,
        "similarity_only_top1_agreement": float(np.mean(similarity_hits == data.test.labels)),
        "head_accuracy": head_accuracy,
        "ratio": search_agreement / head_accuracy,
        "head": result.candidate.name,
        "head_params": result.candidate.params,
        "head_oof_accuracy": float(result.metrics["accuracy"]),
        "train_seconds": train_seconds,
        "search_ms_per_query": search_ms,
    }


def summarise(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    search = spread([s["search_top1_agreement"] for s in seeds])
    head = spread([s["head_accuracy"] for s in seeds])
    ratio = spread([s["ratio"] for s in seeds])
    return {
        "search_top1_agreement": search,
        "similarity_only_top1_agreement": spread(
            [s["similarity_only_top1_agreement"] for s in seeds]
        ),
        "head_accuracy": head,
        "ratio": ratio,
        "ratio_of_means": search["mean"] / head["mean"],
        "target": "search_top1_agreement >= head_accuracy (ratio >= 1)",
        "target_met": search["mean"] >= head["mean"],
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"{'seed':>4}  {'search top-1':>12}  {'cosine only':>11}  {'head acc':>8}  {'ratio':>6}"
        "  head"
    )
    for s in report["seeds"]:
        print(
            f"{s['seed']:>4}  {s['search_top1_agreement']:>12.1%}"
            f"  {s['similarity_only_top1_agreement']:>11.1%}  {s['head_accuracy']:>8.1%}"
            f"  {s['ratio']:>6.3f}  {s['head']} {s['head_params']} ({s['train_seconds']:.0f} s)"
        )
    summary = report["summary"]

    def line(name: str, key: str, fmt: str) -> str:
        v = summary[key]
        return (
            f"{name}: mean {v['mean']:{fmt}} (std {v['std']:{fmt}}, "
            f"min {v['min']:{fmt}}, max {v['max']:{fmt}})"
        )

    print(line("search top-1 agreement", "search_top1_agreement", ".1%"))
    print(line("cosine-only top-1 agreement", "similarity_only_top1_agreement", ".1%"))
    print(line("head accuracy", "head_accuracy", ".1%"))
    print(line("ratio", "ratio", ".3f"))
    print(f"target met (search >= head, means): {summary['target_met']}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labelled", type=int, default=2000, help="labelled samples per seed")
    parser.add_argument("--pool", type=int, default=3000, help="images they are drawn from")
    parser.add_argument("--test", type=int, default=1000, help="held-out query images")
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5, 6, 7])
    parser.add_argument("--threads", type=int, default=2, help="torch threads when embedding")
    parser.add_argument("--output", type=Path, default=RESULTS / "search.json")
    args = parser.parse_args(argv)
    if args.labelled > args.pool:
        parser.error("--labelled must not exceed --pool")
    started = time.perf_counter()
    data = load_benchmark_data(args.pool, 0, args.test, threads=args.threads)
    seeds = [run_seed(data, args.labelled, seed) for seed in args.seeds]
    report: dict[str, Any] = {
        "benchmark": "search",
        "config": {k: v for k, v in vars(args).items() if k != "output"},
        "data": data.describe(),
        "machine": platform.platform(),
        "summary": summarise(seeds),
        "seeds": seeds,
        "seconds": time.perf_counter() - started,
    }
    write_result(args.output, report)
    print(f"wrote {args.output}", file=sys.stderr)
    print_table(report)
    return report


if __name__ == "__main__":
    main()

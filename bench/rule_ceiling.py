"""How far can a 5-example rule go on this backbone? Rankings compared at their best thresholds.

B5's rules row asks a rule with 5 example images of one class to capture its class from traffic
of all ten at precision >= 0.9 and recall >= 0.5. This measures the ceiling of the rankings a
rule could use, each at the threshold that suits *each rule best* (an oracle no product has:
the recall of the most permissive threshold that still keeps that rule's precision >= 0.9),
and at the best threshold shared by every rule (what a default can do):

* ``mean_similarity``: winnow's rule (:mod:`capture.rules`), mean cosine similarity to the
  examples;
* ``centred``: the same after subtracting the mean of 2,000 traffic vectors (removes the
  component every EfficientNet-Lite0 vector shares);
* ``query_expansion``: centred, with the examples' 20 nearest traffic vectors added to them;
* ``diffusion``: label propagation from the examples over a mutual 20-NN graph of the traffic
  (Zhou et al. 2004; the retrieval form of Iscen et al. 2017), a new input scored by its
  nearest traffic neighbours.

The traffic the transductive rankings see is 2,000 other pool images; the figures are on the
validation split, 10 classes x ``--seeds`` seeds.

Usage (from the repository root)::

    python -m bench.rule_ceiling          # prints a table, ~2 minutes
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.data import load_benchmark_data  # noqa: E402
from capture.scores import unit_rows  # noqa: E402

EXAMPLES, TRAFFIC, NEIGHBOURS = 5, 2000, 20
THRESHOLDS = np.linspace(-0.2, 1.0, 481)
Ranking = Callable[[np.ndarray], np.ndarray]


def rankings(examples: np.ndarray, traffic: np.ndarray) -> dict[str, Ranking]:
    """Each ranking's scorer for one rule (higher: more like the examples)."""
    centre = traffic.mean(axis=0)
    shifted_examples, shifted_traffic = unit_rows(examples - centre), unit_rows(traffic - centre)
    near = np.argsort(-(shifted_traffic @ shifted_examples.mean(axis=0)))[:NEIGHBOURS]
    expanded = np.concatenate([shifted_examples, shifted_traffic[near]]).mean(axis=0)
    spread = _diffuse(shifted_examples, shifted_traffic)

    def diffusion(queries: np.ndarray) -> np.ndarray:
        similarities = unit_rows(queries - centre) @ shifted_traffic.T
        nearest = np.argpartition(-similarities, NEIGHBOURS, axis=1)[:, :NEIGHBOURS]
        weights = np.maximum(np.take_along_axis(similarities, nearest, axis=1), 0.0) ** 3
        return (weights * spread[nearest]).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-12)

    return {
        "mean_similarity": lambda q: q @ examples.mean(axis=0),
        "centred": lambda q: unit_rows(q - centre) @ shifted_examples.mean(axis=0),
        "query_expansion": lambda q: unit_rows(q - centre) @ expanded,
        "diffusion": diffusion,
    }


def _diffuse(examples: np.ndarray, traffic: np.ndarray, alpha: float = 0.9) -> np.ndarray:
    """Label propagation from the examples; each traffic vector's share, scaled to max 1."""
    nodes = np.concatenate([examples, traffic])
    similarities = nodes @ nodes.T
    np.fill_diagonal(similarities, -1.0)
    nearest = np.argpartition(-similarities, NEIGHBOURS, axis=1)[:, :NEIGHBOURS]
    graph = np.zeros_like(similarities)
    rows = np.arange(len(nodes))[:, None]
    graph[rows, nearest] = np.maximum(similarities[rows, nearest], 0.0) ** 3
    graph = np.minimum(graph, graph.T)  # mutual neighbours only
    degree = 1.0 / np.sqrt(np.maximum(graph.sum(axis=1), 1e-12))
    graph = degree[:, None] * graph * degree[None, :]
    seeds = np.zeros(len(nodes))
    seeds[: len(examples)] = 1.0
    spread = seeds.copy()
    for _ in range(20):
        spread = alpha * graph @ spread + seeds
    share = spread[len(examples) :]
    return share / max(float(share.max()), 1e-12)


def precision_recall(scores: np.ndarray, relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision (1 with nothing captured) and recall at every threshold of ``THRESHOLDS``."""
    captured = scores[None, :] >= THRESHOLDS[:, None]
    counts = captured.sum(axis=1)
    hits = (captured & relevant[None, :]).sum(axis=1)
    precision = np.where(counts > 0, hits / np.maximum(counts, 1), 1.0)
    return precision, hits / max(int(relevant.sum()), 1)


def oracle_recalls(data: Any, seeds: int) -> dict[str, dict[str, Any]]:
    """Per ranking: the mean oracle recall at precision >= 0.9, the best shared threshold's
    precision and recall, and the oracle recall per class; ``seeds`` rules per class."""
    classes = np.unique(data.pool.labels)
    curves: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    owners: list[str] = []  # the class of each rule, in the order of every ranking's curves
    for seed in range(seeds):
        for i, label in enumerate(classes):
            rng = np.random.default_rng(seed * 100 + i)
            chosen = rng.choice(np.flatnonzero(data.pool.labels == label), EXAMPLES, replace=False)
            others = np.setdiff1d(np.arange(len(data.pool.labels)), chosen)
            traffic = data.pool.vectors[rng.choice(others, TRAFFIC, replace=False)]
            relevant = data.val.labels == label
            owners.append(str(label))
            for name, rank in rankings(data.pool.vectors[chosen], traffic).items():
                curves.setdefault(name, []).append(
                    precision_recall(rank(data.val.vectors), relevant)
                )
    table = {}
    for name, rows in curves.items():
        oracles = np.asarray([r[(p >= 0.9)].max(initial=0.0) for p, r in rows])
        precision = np.mean([p for p, _ in rows], axis=0)
        recall = np.mean([r for _, r in rows], axis=0)
        best = int(np.argmax(np.where(precision >= 0.9, recall, -1.0)))
        table[name] = {
            "oracle_recall": float(oracles.mean()),
            "shared_precision": float(precision[best]),
            "shared_recall": float(recall[best]),
            "oracle_recall_per_class": {
                str(c): float(oracles[np.asarray(owners) == c].mean()) for c in classes
            },
        }
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    table = oracle_recalls(load_benchmark_data(5000, 1000, 2000, verbose=False), args.seeds)
    print(f"{'ranking':16s} oracle recall  shared threshold: precision recall")
    for name, row in table.items():
        print(
            f"{name:16s} {row['oracle_recall']:13.3f}  {row['shared_precision']:27.3f} "
            f"{row['shared_recall']:6.3f}"
        )
    print("oracle recall per class:")
    for c in next(iter(table.values()))["oracle_recall_per_class"]:
        print(
            f"  {c:12s} "
            + " ".join(
                f"{name} {row['oracle_recall_per_class'][c]:.2f}" for name, row in table.items()
            )
        )


if __name__ == "__main__":
    main()

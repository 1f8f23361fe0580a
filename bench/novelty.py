"""B7 novel classes: does winnow notice a class its function does not have, and propose it?

Fashion-MNIST (Debian package) embedded by ``efficientnet-lite0`` (see :mod:`bench.data`). Per
scenario and seed, two classes are held out: ``far`` (trouser + bag, unlike the 8 others) and
``lookalike`` (shirt + pullover, between T-shirts and coats). The function's labelled samples are
``--per-class`` images of each of the 8 seen classes drawn from the pool; the head is trained on
them as a retrain does (:func:`learner.train_head`). Traffic is every other pool, val and test
image (all 10 classes), shuffled.

* novelty AUROC (unseen vs seen traffic) of winnow's calibrated score
  (:class:`capture.novelty.NoveltyModel`, each input scored relative to the traffic before it, as
  an invoke is) against two references: the head's max-probability (``1 - max p``) and plain kNN
  distance (mean cosine distance to the 5 nearest labelled); also winnow's score from the
  labelled data alone (no traffic window), for scale;
* proposals: the traffic is invoked in order; inputs whose novelty passes the policy's
  ``novelty_threshold`` are captured ``novel`` and clustered as the service does
  (:func:`capture.proposals.cluster_novel_items` with the policy's size and tightness) every
  ``--every`` invokes. Reported: for each unseen class, how many of its inputs had been invoked
  when a proposal whose members are >= 80% that class first appeared (target < 300), once with
  proposals left alone and once with a reviewer accepting each such proposal as it appears
  (:func:`stream_with_reviewer`); and, on a stream of ``--seen-only`` invokes of seen classes
  only, how many proposals ever appeared (target 0).

Usage (from the repository root)::

    python -m bench.novelty                      # 3 seeds, both scenarios
    python -m bench.novelty --seeds 0 --quick    # smaller, for a smoke run
    python -m bench.novelty --cost               # per-invoke cost of the traffic window only

Writes ``bench/results/novelty.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/novelty.py``
    sys.path.insert(0, str(ROOT))

from bench.data import load_benchmark_data  # noqa: E402
from bench.results_file import write_result  # noqa: E402
from capture import CapturePolicy  # noqa: E402
from capture.novelty import NoveltyModel  # noqa: E402
from capture.proposals import class_spread, cluster_novel_items  # noqa: E402
from capture.traffic import RecentTraffic  # noqa: E402
from learner import train_head  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SCENARIOS = {"far": ("trouser", "bag"), "lookalike": ("shirt", "pullover")}
PURITY = 0.8


def knn_distance(queries: np.ndarray, labelled: np.ndarray, k: int = 5) -> np.ndarray:
    """Plain kNN reference: mean cosine distance to the ``k`` nearest labelled vectors."""
    similarities = queries @ labelled.T
    return 1.0 - (-np.partition(-similarities, k - 1, axis=1)[:, :k]).mean(axis=1)


def streamed_novelty(model: NoveltyModel, vectors: np.ndarray) -> np.ndarray:
    """Each input's novelty as the service scores an invoke: relative to the traffic before it
    (a fresh :class:`capture.traffic.RecentTraffic`, as after a restart)."""
    window = RecentTraffic(vectors.shape[1])
    return np.concatenate([window.score(model, vector[None, :]) for vector in vectors])


def stream_proposals(
    vectors: np.ndarray,
    labels: np.ndarray,
    novelty: np.ndarray,
    policy: CapturePolicy,
    max_distance: float,
    class_means: dict[str, np.ndarray],
    every: int,
) -> list[tuple[int, list[list[str]]]]:
    """Invoke the traffic in order; every ``every`` invokes, the proposals (as member classes)."""
    captured: list[int] = []
    snapshots = []
    for position in range(len(labels)):
        if novelty[position] > policy.novelty_threshold:
            captured.append(position)
        if (position + 1) % every == 0 or position + 1 == len(labels):
            proposals = cluster_novel_items(
                [f"{i:08d}" for i in captured],
                vectors[captured] if captured else np.zeros((0, vectors.shape[1])),
                max_distance=max_distance,
                min_size=policy.proposal_min_size,
                class_means=class_means,
            )
            members = [[str(labels[int(i)]) for i in p.item_ids] for p in proposals]
            snapshots.append((position + 1, members))
    return snapshots


def stream_with_reviewer(
    labelled: np.ndarray,
    names: np.ndarray,
    traffic: np.ndarray,
    labels: np.ndarray,
    unseen: tuple[str, ...],
    policy: CapturePolicy,
    every: int,
    seed: int,
) -> dict[str, int | None]:
    """The loop as a team runs it: whenever a proposal is >= ``PURITY`` one unseen class, a
    reviewer accepts it leaving the other members out, the class joins the labelled data and the
    novelty model is refitted (as the service does at once after an accept). Returns, per unseen
    class, how many of its inputs had been invoked when its proposal appeared."""
    model = NoveltyModel(labelled, names, seed=seed)
    window = RecentTraffic(traffic.shape[1])
    captured: list[int] = []
    found: dict[str, int] = {}
    for position, vector in enumerate(traffic):
        if window.score(model, vector[None, :])[0] > policy.novelty_threshold:
            captured.append(position)
        if (position + 1) % every or len(captured) < policy.proposal_min_size:
            continue
        proposals = cluster_novel_items(
            [str(i) for i in captured],
            traffic[captured],
            max_distance=policy.proposal_tightness * model.class_spread,
            min_size=policy.proposal_min_size,
        )
        accepted: list[int] = []
        for proposal in proposals:
            members = np.asarray([int(i) for i in proposal.item_ids])
            kinds, counts = np.unique(labels[members], return_counts=True)
            top = str(kinds[np.argmax(counts)])
            if top in unseen and top not in found and counts.max() >= PURITY * len(members):
                found[top] = int(np.sum(labels[: position + 1] == top))
                accepted.extend(int(m) for m in members[labels[members] == top])
        if accepted:
            labelled = np.concatenate([labelled, traffic[accepted]])
            names = np.concatenate([names, labels[accepted]])
            taken = set(accepted)
            captured = [c for c in captured if c not in taken]
            model = NoveltyModel(labelled, names, seed=seed)
    return {name: found.get(name) for name in unseen}


def first_proposed(
    snapshots: list[tuple[int, list[list[str]]]], labels: np.ndarray, name: str
) -> int | None:
    """How many inputs of class ``name`` had been invoked when a pure proposal of it appeared."""
    for invoked, proposals in snapshots:
        for members in proposals:
            if members.count(name) >= PURITY * len(members):
                return int(np.sum(labels[:invoked] == name))
    return None


def labelled_picks(
    pool_labels: np.ndarray, unseen: tuple[str, ...], per_class: int, rng: np.random.Generator
) -> np.ndarray:
    """Pool positions of the function's labelled samples: ``per_class`` of each seen class."""
    return np.concatenate(
        [
            rng.choice(np.flatnonzero(pool_labels == name), per_class, replace=False)
            for name in np.unique(pool_labels)
            if name not in unseen
        ]
    )


def run_seed(data: Any, scenario: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    unseen = SCENARIOS[scenario]
    policy = _policy(args)
    rng = np.random.default_rng(seed)
    pool_labels = data.pool.labels
    picked = labelled_picks(pool_labels, unseen, args.per_class, rng)
    labelled, names = data.pool.vectors[picked], pool_labels[picked]
    rest = np.setdiff1d(np.arange(len(pool_labels)), picked)
    traffic = np.concatenate([data.pool.vectors[rest], data.val.vectors, data.test.vectors])
    traffic_labels = np.concatenate([pool_labels[rest], data.val.labels, data.test.labels])
    order = rng.permutation(len(traffic_labels))
    traffic, traffic_labels = traffic[order], traffic_labels[order]
    is_unseen = np.isin(traffic_labels, unseen)

    started = time.perf_counter()
    head = train_head(labelled, names, seed=seed).head
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model = NoveltyModel(labelled, names, seed=seed)
    fit_seconds = time.perf_counter() - started
    novelty = streamed_novelty(model, traffic)
    labelled_only = model.score(traffic)
    max_probability = 1.0 - np.asarray(head.predict_proba(traffic)).max(axis=1)
    distance = knn_distance(traffic, labelled)

    spread = class_spread(labelled, names, seed=seed)
    max_distance = policy.proposal_tightness * spread
    means = {str(n): labelled[names == n].mean(axis=0) for n in np.unique(names)}
    snapshots = stream_proposals(
        traffic, traffic_labels, novelty, policy, max_distance, means, args.every
    )
    with_reviewer = stream_with_reviewer(
        labelled, names, traffic, traffic_labels, unseen, policy, args.every, seed
    )
    seen_only = np.flatnonzero(~is_unseen)[: args.seen_only]
    seen_novelty = streamed_novelty(model, traffic[seen_only])
    seen_snapshots = stream_proposals(
        traffic[seen_only],
        traffic_labels[seen_only],
        seen_novelty,
        policy,
        max_distance,
        means,
        args.every,
    )
    return {
        "scenario": scenario,
        "unseen": list(unseen),
        "seed": seed,
        "auroc_winnow": float(roc_auc_score(is_unseen, novelty)),
        "auroc_winnow_labelled_only": float(roc_auc_score(is_unseen, labelled_only)),
        "auroc_max_probability": float(roc_auc_score(is_unseen, max_probability)),
        "auroc_knn_distance": float(roc_auc_score(is_unseen, distance)),
        "novel_rate_seen": float(np.mean(novelty[~is_unseen] > policy.novelty_threshold)),
        "novel_rate_seen_only_stream": float(np.mean(seen_novelty > policy.novelty_threshold)),
        "novel_rate_unseen": float(np.mean(novelty[is_unseen] > policy.novelty_threshold)),
        "proposed_after": {
            name: first_proposed(snapshots, traffic_labels, name) for name in unseen
        },
        "proposed_after_with_reviewer": with_reviewer,
        "seen_only_invokes": len(seen_only),
        "seen_only_proposals_max": max((len(p) for _, p in seen_snapshots), default=0),
        "train_seconds": train_seconds,
        "novelty_fit_seconds": fit_seconds,
    }


def _policy(args: argparse.Namespace) -> CapturePolicy:
    """The default capture policy with the novelty settings given on the command line."""
    defaults = CapturePolicy()
    return CapturePolicy(
        novelty_threshold=args.threshold or defaults.novelty_threshold,
        proposal_min_size=args.min_size or defaults.proposal_min_size,
        proposal_tightness=args.tightness or defaults.proposal_tightness,
    )


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for scenario in SCENARIOS:
        rows = [r for r in runs if r["scenario"] == scenario]
        if not rows:
            continue
        entry: dict[str, Any] = {}
        for key in (
            "auroc_winnow",
            "auroc_winnow_labelled_only",
            "auroc_max_probability",
            "auroc_knn_distance",
        ):
            values = np.asarray([r[key] for r in rows])
            entry[key] = {
                "mean": float(values.mean()),
                "std": float(values.std()),
                "min": float(values.min()),
                "max": float(values.max()),
            }
        after = [v for r in rows for v in r["proposed_after"].values()]
        entry["proposed_after_worst"] = None if None in after else max(after)
        entry["all_proposed_before_300"] = None not in after and max(after) < 300
        reviewed = [v for r in rows for v in r["proposed_after_with_reviewer"].values()]
        entry["proposed_after_with_reviewer_worst"] = None if None in reviewed else max(reviewed)
        entry["seen_only_proposals_max"] = max(r["seen_only_proposals_max"] for r in rows)
        summary[scenario] = entry
    return summary


def invoke_cost(data: Any, calls: int = 400) -> dict[str, float]:
    """Median milliseconds of one input's novelty from the labelled data alone and relative to a
    full traffic window (recalibrations included), interleaved so load hits both alike; and of
    one recalibration. 2,000 labelled pool vectors of all classes, a window of 2,000 others."""
    model = NoveltyModel(data.pool.vectors[:2000], data.pool.labels[:2000])
    window = RecentTraffic(data.pool.vectors.shape[1])
    window.add(data.pool.vectors[2000:4000])
    plain, relative = [], []
    for vector in data.val.vectors[:calls]:
        started = time.perf_counter()
        model.score(vector[None, :])
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        window.score(model, vector[None, :])
        relative.append(time.perf_counter() - started)
    recalibrations = []
    for _ in range(5):
        started = time.perf_counter()
        model.calibrate_to(data.pool.vectors[2000:4000])
        recalibrations.append(time.perf_counter() - started)
    return {
        "labelled_only_ms": 1e3 * float(np.median(plain)),
        "with_window_ms": 1e3 * float(np.median(relative)),
        "recalibration_ms": 1e3 * float(np.median(recalibrations)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=250)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--seen-only", type=int, default=2000)
    parser.add_argument("--threshold", type=float, help="noveltyThreshold (policy default)")
    parser.add_argument("--min-size", type=int, help="proposalMinSize (policy default)")
    parser.add_argument("--tightness", type=float, help="proposalTightness (policy default)")
    parser.add_argument("--quick", action="store_true", help="pool 3000 / val 500 / test 500")
    parser.add_argument("--cost", action="store_true", help="time one invoke's novelty, only")
    parser.add_argument("--output", type=Path, default=RESULTS / "novelty.json")
    args = parser.parse_args(argv)
    sizes = (3000, 500, 500) if args.quick else (5000, 1000, 2000)
    data = load_benchmark_data(*sizes)
    if args.cost:
        cost = invoke_cost(data)
        ratio = cost["with_window_ms"] / cost["labelled_only_ms"]
        print(f"{cost} (with the window / without: {ratio:.2f})")
        return
    runs = []
    for scenario in SCENARIOS:
        for seed in args.seeds:
            run = run_seed(data, scenario, seed, args)
            runs.append(run)
            print(
                f"{scenario:10s} seed {seed}: AUROC winnow {run['auroc_winnow']:.3f} "
                f"max-prob {run['auroc_max_probability']:.3f} "
                f"kNN {run['auroc_knn_distance']:.3f}; proposed after {run['proposed_after']}; "
                f"seen-only proposals {run['seen_only_proposals_max']}",
                flush=True,
            )
    report = {
        "benchmark": "B7 novel classes",
        "command": "python -m bench.novelty " + " ".join(argv or sys.argv[1:]),
        "data": data.describe(),
        "policy": _policy(args).public_dict(),
        "machine": {"platform": platform.platform(), "processor": platform.machine()},
        "summary": summarise(runs),
        "runs": runs,
    }
    write_result(args.output, report)
    for scenario, entry in report["summary"].items():
        print(scenario, entry)


if __name__ == "__main__":
    main()

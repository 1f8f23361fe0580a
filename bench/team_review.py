"""B11: does a team's review policy give cleaner labels, and can winnow tell its reviewers apart?

A simulated team of three reviewers (accuracies 0.95, 0.90, 0.70) labels Fashion-MNIST images
(efficientnet-lite0 vectors from :mod:`bench.data`) under the same budget of reviews in each arm:

* ``round_robin``: one review per item, the reviewers in turn;
* ``pairs_best_settles``: two reviews per item (the three pairs in turn); a disagreement is settled
  by the best reviewer: their vote if they were one of the two, else a third review by them
  (which counts in the budget);
* ``overlap_weighted``: one review per item plus a second one, by another reviewer, on 10% of the
  items; a disagreement is settled by :func:`review_queue.quality.weighted_settle` with the
  accuracies :func:`review_queue.quality.dawid_skene` estimates from all the arm's votes;
* two variants of it that buy better estimates: gold items (labelled samples shown blind to all
  three reviewers, a tenth of the reviews, never trained on) and a 30% overlap.

A reviewer is right with their accuracy; a wrong label is drawn toward look-alike classes: in
proportion to the off-diagonal row of the true class in the confusion matrix of a logistic
regression cross-validated on the validation split (shirt goes to t-shirt, coat and pullover;
sneaker to ankle boot and sandal). Votes are independent given the true class (no item is hard
for everyone), which is Dawid-Skene's own assumption.

Per arm: the share of training labels that are right, the test accuracy of the head winnow would
deploy (:func:`learner.train_head`) on them, the reviews spent; per reviewer, the accuracy
estimated by Dawid-Skene, by the agreement with the consensus that Cohen's kappa chance-corrects,
and on gold items, beside the reviewer's true (empirical) accuracy in that arm. For scale, the
head is also trained on the whole pool with every label right.

Usage (from the repository root)::

    python -m bench.team_review            # seeds 0-4, writes bench/results/team_review.json
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.results_file import write_result  # noqa: E402
from learner import train_head  # noqa: E402
from review_queue.quality import (  # noqa: E402
    Vote,
    dawid_skene,
    gold_accuracy,
    kappa_against_consensus,
    unanimous,
    weighted_settle,
)

OUTPUT = ROOT / "bench" / "results" / "team_review.json"
TEAM = {"A": 0.95, "B": 0.90, "C": 0.70}  # reviewer -> probability that a label is right
BEST = "A"
TARGET_LABEL_GAIN = 0.05  # best team arm's labels vs round robin's
TARGET_ESTIMATE_ERROR = 0.05  # each reviewer's estimated accuracy vs the true one


@dataclass(frozen=True)
class Arm:
    """One review policy: reviews per item, extra overlap and gold, and who settles."""

    name: str
    description: str
    reviews_per_item: int = 1
    overlap: float = 0.0  # share of items a second reviewer also labels
    gold_rate: float = 0.0  # share of the reviews spent on gold items
    settle: str = "none"  # "best": the best reviewer decides; "weighted": Dawid-Skene weights


ARMS = (
    Arm("round_robin", "(a) one review per item, round robin"),
    Arm(
        "pairs_best_settles",
        "(b) two reviews per item, the best reviewer settles",
        reviews_per_item=2,
        settle="best",
    ),
    Arm(
        "overlap_weighted",
        "(c) one review + 10% overlap, Dawid-Skene weighting",
        overlap=0.10,
        settle="weighted",
    ),
    Arm(
        "overlap_gold_weighted",
        "(c) with gold items at goldRate 0.1",
        overlap=0.10,
        gold_rate=0.10,
        settle="weighted",
    ),
    Arm(
        "overlap30_weighted",
        "(c) with a 30% overlap",
        overlap=0.30,
        settle="weighted",
    ),
)


def lookalike_errors(vectors: np.ndarray, labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """Where a wrong label goes: row ``i`` is the distribution of the wrong label of a class-``i``
    item, the off-diagonal of a cross-validated logistic regression's confusion matrix (a class the
    classifier never confused spreads its errors evenly over the others)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix
    from sklearn.model_selection import cross_val_predict

    predicted = cross_val_predict(
        LogisticRegression(C=10.0, max_iter=300, tol=1e-3), vectors, labels, cv=5
    )
    counts = confusion_matrix(labels, predicted, labels=classes).astype(float)
    np.fill_diagonal(counts, 0.0)
    for row in counts:
        if row.sum() == 0:
            row[:] = 1.0
    np.fill_diagonal(counts, 0.0)
    return counts / counts.sum(axis=1, keepdims=True)


@dataclass
class Outcome:
    """What one arm produced: votes, the training label per item, and the reviews spent."""

    votes: list[Vote] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # item -> training label
    gold: dict[str, str] = field(default_factory=dict)  # gold item -> known answer
    truth: dict[str, str] = field(default_factory=dict)  # every reviewed item's true label
    dawid_skene: Any = None


class Simulation:
    """The team labelling items; one random generator per arm and seed."""

    def __init__(self, classes: list[str], errors: np.ndarray, rng: np.random.Generator) -> None:
        self.classes, self.errors, self.rng = classes, errors, rng
        self.index = {name: i for i, name in enumerate(classes)}

    def review(self, reviewer: str, true_label: str) -> str:
        i = self.index[true_label]
        if self.rng.random() < TEAM[reviewer]:
            return true_label
        return self.classes[self.rng.choice(len(self.classes), p=self.errors[i])]

    def run(
        self, arm: Arm, items: list[str], truth: dict[str, str], gold: dict[str, str], budget: int
    ) -> Outcome:
        """Review ``items`` in order under ``arm`` until ``budget`` reviews are spent."""
        team = list(TEAM)
        out = Outcome()
        spent = 0
        n_gold = int(round(arm.gold_rate * budget / len(team)))
        for item in list(gold)[:n_gold]:  # each gold item is shown to every reviewer
            out.gold[item], out.truth[item] = gold[item], gold[item]
            for reviewer in team:
                out.votes.append(Vote(item, reviewer, self.review(reviewer, gold[item])))
                spent += 1
        for k, item in enumerate(items):
            reviewers = [team[(k + j) % len(team)] for j in range(arm.reviews_per_item)]
            if arm.overlap and self.rng.random() < arm.overlap:
                reviewers.append(team[(k + 1 + int(self.rng.integers(len(team) - 1))) % len(team)])
            worst_cost = len(reviewers) + (arm.settle == "best")
            if spent + worst_cost > budget:
                break
            votes = [Vote(item, r, self.review(r, truth[item])) for r in reviewers]
            spent += len(votes)
            agreed = unanimous(v.label for v in votes)
            if agreed is None and arm.settle == "best":
                decided = [v for v in votes if v.reviewer == BEST]
                if not decided:  # the best reviewer was not among the two: a third review
                    decided = [Vote(item, BEST, self.review(BEST, truth[item]))]
                    votes += decided
                    spent += 1
                agreed = decided[0].label
            out.votes += votes
            out.truth[item] = truth[item]
            if agreed is not None:
                out.labels[item] = agreed
        if arm.settle != "none" or arm.overlap or arm.reviews_per_item > 1:
            self._settle(out)
        return out

    def _settle(self, out: Outcome) -> None:
        """Fit Dawid-Skene on every vote; settle the disagreements still open by its weights."""
        out.dawid_skene = dawid_skene(out.votes, gold=out.gold)
        accuracies = out.dawid_skene.accuracies()
        by_item: dict[str, list[Vote]] = {}
        for vote in out.votes:
            if vote.item_id not in out.gold:
                by_item.setdefault(str(vote.item_id), []).append(vote)
        for item, votes in by_item.items():
            if item not in out.labels:  # a disagreement the arm left open
                settled = weighted_settle(
                    [(v.reviewer, v.label) for v in votes], accuracies, n_labels=len(self.classes)
                )
                out.labels[item] = settled.label


def reviewer_figures(out: Outcome) -> dict[str, dict[str, Any]]:
    """Per reviewer: true accuracy over their votes in the arm and each estimate of it."""
    consensus = {**out.labels, **out.gold}
    agreement = kappa_against_consensus(out.votes, consensus)
    gold = gold_accuracy(out.votes, out.gold)
    estimated = out.dawid_skene.reviewers if out.dawid_skene else {}
    found = {}
    for reviewer in TEAM:
        mine = [v for v in out.votes if v.reviewer == reviewer]
        truth = float(np.mean([v.label == out.truth[str(v.item_id)] for v in mine]))
        ds = estimated.get(reviewer)
        found[reviewer] = {
            "votes": len(mine),
            "true_accuracy": truth,
            "dawid_skene": ds.accuracy if ds else None,
            "agreement": agreement[reviewer].agreement if reviewer in agreement else None,
            "kappa": agreement[reviewer].kappa if reviewer in agreement else None,
            "gold": gold[reviewer].accuracy if reviewer in gold else None,
        }
    return found


def run_seed(seed: int, data: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Every arm on one seed's item order: label quality, head accuracy, reviewer estimates."""
    started = time.perf_counter()
    classes = sorted(set(data.val.labels) | set(data.pool.labels))
    errors = lookalike_errors(data.val.vectors, data.val.labels, classes)
    order = np.random.default_rng(seed).permutation(len(data.pool.labels))
    items = [f"pool-{i}" for i in order]
    truth = {f"pool-{i}": str(data.pool.labels[i]) for i in order}
    gold = {f"gold-{i}": str(label) for i, label in enumerate(data.val.labels)}
    arms = {}
    for n, arm in enumerate(ARMS):
        if args.arms and arm.name not in args.arms:
            continue
        sim = Simulation(classes, errors, np.random.default_rng([seed, n]))
        out = sim.run(arm, items, truth, gold, args.reviews)
        labelled = sorted(out.labels, key=lambda item: int(item.split("-")[1]))
        rows = [int(item.split("-")[1]) for item in labelled]
        given = np.asarray([out.labels[item] for item in labelled], dtype=object)
        head = train_head(data.pool.vectors[rows], given, seed=seed).head
        reviewers = reviewer_figures(out)
        arms[arm.name] = {
            "items": len(labelled),
            "reviews": len(out.votes),
            "gold_reviews": sum(v.item_id in out.gold for v in out.votes),
            "reviews_by_reviewer": dict(sorted(Counter(v.reviewer for v in out.votes).items())),
            "labels_correct": float(np.mean(given == data.pool.labels[rows])),
            "test_accuracy": float(np.mean(head.predict(data.test.vectors) == data.test.labels)),
            "reviewers": reviewers,
            "dawid_skene_worst_error": _worst_error(reviewers, "dawid_skene"),
            "agreement_worst_error": _worst_error(reviewers, "agreement"),
            "gold_worst_error": _worst_error(reviewers, "gold"),
        }
    found = {"seed": seed, "arms": arms, "seconds": round(time.perf_counter() - started, 1)}
    print(f"seed {seed}: {_line(arms)}", file=sys.stderr, flush=True)
    return found


def _worst_error(reviewers: dict[str, dict[str, Any]], key: str) -> float | None:
    """The largest |estimate - true accuracy| over the team; None if any reviewer lacks one."""
    errors = [
        r[key] - r["true_accuracy"] if r[key] is not None else None for r in reviewers.values()
    ]
    return None if None in errors else max(abs(e) for e in errors if e is not None)


def _line(arms: dict[str, Any]) -> str:
    return "; ".join(
        f"{name} labels {a['labels_correct']:.3f} test {a['test_accuracy']:.3f}"
        + (f" ds err {a['dawid_skene_worst_error']:.3f}" if a["dawid_skene_worst_error"] else "")
        for name, a in arms.items()
    )


def median_of(values: list[float | None]) -> dict[str, Any] | None:
    """Median, min, max and the per-seed values; None when any seed has no value."""
    if not values or any(v is None for v in values):
        return None
    known = [float(v) for v in values if v is not None]
    return {
        "median": float(np.median(known)),
        "min": min(known),
        "max": max(known),
        "per_seed": [round(v, 4) for v in known],
    }


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """Medians over seeds per arm and reviewer, and the target verdicts."""
    per_seed = report["per_seed"]
    summary: dict[str, Any] = {}
    for name in per_seed[0]["arms"]:
        runs = [s["arms"][name] for s in per_seed]
        arm: dict[str, Any] = {
            key: median_of([r[key] for r in runs])
            for key in (
                "items",
                "reviews",
                "gold_reviews",
                "labels_correct",
                "test_accuracy",
                "dawid_skene_worst_error",
                "agreement_worst_error",
                "gold_worst_error",
            )
        }
        arm["reviewers"] = {
            reviewer: {
                key: median_of([r["reviewers"][reviewer][key] for r in runs])
                for key in ("true_accuracy", "dawid_skene", "agreement", "kappa", "gold")
            }
            for reviewer in TEAM
        }
        summary[name] = arm
    baseline = summary["round_robin"]["labels_correct"]["median"]
    team = {n: a["labels_correct"]["median"] - baseline for n, a in summary.items()}
    team.pop("round_robin")
    best = max(team, key=lambda n: team[n]) if team else None
    targets: dict[str, Any] = {}
    if best is not None:
        targets["best_team_arm"] = best
        targets["label_gain"] = team[best]
        targets["label_gain_met"] = team[best] >= TARGET_LABEL_GAIN
    for name, arm in summary.items():
        worst = arm["dawid_skene_worst_error"]
        if worst is not None:
            targets[f"estimates_within_{name}"] = worst["median"] <= TARGET_ESTIMATE_ERROR
    report["summary"], report["targets"] = summary, targets
    return report


def run(data: Any, args: argparse.Namespace) -> dict[str, Any]:
    """All arms over all seeds on ``data`` (a :class:`bench.data.BenchmarkData`-like object)."""
    report: dict[str, Any] = {
        "bench": "B11 team review",
        "machine": f"{platform.platform()}, {platform.processor() or 'cpu'}",
        "data": data.describe(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "team": TEAM,
        "best_reviewer": BEST,
        "arms": {arm.name: asdict(arm) for arm in ARMS if not args.arms or arm.name in args.arms},
        "target_label_gain": TARGET_LABEL_GAIN,
        "target_estimate_error": TARGET_ESTIMATE_ERROR,
    }
    # what the head reaches when every label of the whole pool is right: the ceiling of every arm
    reference = train_head(data.pool.vectors, data.pool.labels, seed=0).head
    report["test_accuracy_all_pool_labels_right"] = float(
        np.mean(reference.predict(data.test.vectors) == data.test.labels)
    )
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(run_seed, seed, data, args) for seed in args.seeds]
            report["per_seed"] = [future.result() for future in futures]
    else:
        report["per_seed"] = [run_seed(seed, data, args) for seed in args.seeds]
    return summarise(report)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--reviews", type=int, default=3000, help="reviews each arm spends")
    parser.add_argument("--pool", type=int, default=3000, help="images the items come from")
    parser.add_argument("--val", type=int, default=1000, help="look-alikes and gold items")
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--arms", nargs="*", default=[], help="a selection (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="processes running seeds at once")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from bench.data import load_benchmark_data

    report = run(load_benchmark_data(args.pool, args.val, args.test), args)
    write_result(args.output, report)
    return report


if __name__ == "__main__":
    main()

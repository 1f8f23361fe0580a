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

The service is checked against the simulation: the first seed's votes of arms (a) and (b) are
replayed through the real app (:func:`replay`: a fresh data dir and SQLite, one function per arm,
the items inserted as pending review items with their vectors and images, each vote posted in the
simulation's order with its reviewer's key, a disputed item settled by an admin key annotating
the best reviewer's label with ``annotatedBy`` them), and the labels of the samples the service
made are compared with the labels the simulation decided.

Usage (from the repository root)::

    python -m bench.team_review            # seeds 0-4, writes bench/results/team_review.json
    python -m bench.team_review --no-replay   # the simulation only
"""

from __future__ import annotations

import argparse
import io
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.data import BACKBONE_SPEC  # noqa: E402
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
REPLAYED_ARMS = ("round_robin", "pairs_best_settles")  # the arms the service runs as they are
ADMIN_KEY = "bench-admin-key"


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


def replay(
    outcomes: dict[str, Outcome],
    classes: list[str],
    vectors: Callable[[str], np.ndarray],
    png: Callable[[str], bytes],
    *,
    backbone: str,
) -> dict[str, dict[str, Any]]:
    """Replay arms (a) and (b) through the real app and compare its samples with the simulation.

    One fresh service (temp data dir, SQLite) and one function per arm with ``classes`` as labels
    and the arm's ``reviewsPerItem``; its items go in as pending review items (``vectors(item)``,
    ``png(item)`` as the image); each simulated vote is posted in order with its reviewer's key,
    the item's first ``reviewsPerItem`` votes as votes; an item the service leaves ``disputed`` is
    settled by the admin key with the best reviewer's label (their vote, or the third review the
    simulation gave them) and ``annotatedBy`` them. Per arm: items, samples made, disputes, the
    agreement of the service's labels with the simulation's, their share right, and the label
    history's events by ``via``.
    """
    from fastapi.testclient import TestClient
    from sqlmodel import select

    import review_queue
    from api.app import create_app
    from service.settings import Settings
    from store import LabelEvent, Sample, session_scope

    found: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="winnow-b11-") as data_dir:
        settings = Settings(
            data_dir=Path(data_dir),
            backbone=backbone,
            retrain_interval=0,
            seed="0",
            admin_key=ADMIN_KEY,
        )
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with TestClient(create_app(settings), headers=admin) as http:
            rt = http.app.state.runtime  # type: ignore[attr-defined]
            for name, out in outcomes.items():
                arm = next(a for a in ARMS if a.name == name)
                started = time.perf_counter()
                fid = _ok(http.post("/v1/functions", json={"name": name, "labels": classes}))["id"]
                _ok(
                    http.put(
                        f"/v1/functions/{fid}/capture-policy",
                        json={"reviewsPerItem": arm.reviews_per_item},
                    )
                )
                keys = {
                    reviewer: {
                        "Authorization": "Bearer "
                        + _ok(
                            http.post(
                                "/v1/keys",
                                json={
                                    "functionId": fid,
                                    "scopes": ["annotate"],
                                    "reviewer": reviewer,
                                },
                            )
                        )["key"]
                    }
                    for reviewer in TEAM
                }
                votes: dict[str, list[Vote]] = {}
                for v in out.votes:
                    votes.setdefault(str(v.item_id), []).append(v)
                ids: dict[str, str] = {}  # simulated item -> the service's review item
                with session_scope(rt.engine) as session:
                    for item in votes:
                        row = review_queue.create_item(
                            session=session,
                            function_id=fid,
                            blob=rt.blobs.put(png(item)),
                            vector=vectors(item),
                            predicted_label=None,
                            confidence=None,
                            model_version=None,
                            reason="uncertain",
                            score=0.0,
                            scores={},
                        )
                        session.flush()
                        ids[item] = row.id
                problems: Counter[str] = Counter()
                for item, mine in votes.items():
                    url = f"/v1/functions/{fid}/review/{ids[item]}/annotate"
                    status = None
                    for v in mine[: arm.reviews_per_item]:
                        answer = http.post(
                            url, json={"labelName": v.label}, headers=keys[v.reviewer]
                        )
                        if answer.status_code != 200:
                            problems[f"vote answered {answer.status_code}"] += 1
                            break
                        status = answer.json()["status"]
                    if status == "disputed":
                        settling = [v for v in mine if v.reviewer == BEST]
                        if not settling:
                            problems["disputed without a vote of the best reviewer"] += 1
                            continue
                        answer = http.post(
                            url, json={"labelName": settling[-1].label, "annotatedBy": BEST}
                        )
                        if answer.status_code != 200:
                            problems[f"settle answered {answer.status_code}"] += 1
                    elif len(mine) > arm.reviews_per_item:
                        problems["settle vote with no dispute"] += 1
                service_labels = {
                    **_listed(http, fid, "annotated"),
                    **{i: None for i in _listed(http, fid, "disputed")},
                }
                with session_scope(rt.engine) as session:
                    samples = session.exec(select(Sample).where(Sample.function_id == fid)).all()
                    events = session.exec(
                        select(LabelEvent).where(LabelEvent.function_id == fid)
                    ).all()
                    history = [(e.via, tuple(e.actors), e.review_item_id or "") for e in events]
                by_item = {ids[i]: i for i in ids}
                labels = {by_item[i]: label for i, label in service_labels.items() if i in by_item}
                decided = [i for i in votes if i in out.labels]
                agree = [labels.get(i) == out.labels[i] for i in decided]
                right = [labels[i] == out.truth[i] for i in labels if labels[i] is not None]
                voters = {
                    ids[i]: tuple(v.reviewer for v in m[: arm.reviews_per_item])
                    for i, m in votes.items()
                }
                expected = {"review": voters, "consensus": voters}
                actors_right = [
                    actors == ((BEST,) if via == "dispute" else expected[via][item])
                    for via, actors, item in history
                ]
                found[name] = {
                    "items": len(ids),
                    "samples": len(samples),
                    "annotated": sum(label is not None for label in labels.values()),
                    "disputed_left": sum(label is None for label in labels.values()),
                    "disputes": sum(via == "dispute" for via, _, _ in history),
                    "simulated_disputes": sum(
                        arm.reviews_per_item > 1 and len({v.label for v in m}) > 1
                        for m in votes.values()
                    ),
                    "agreement_with_simulation": float(np.mean(agree)) if agree else None,
                    "disagreements": len(agree) - sum(agree),
                    "labels_correct": float(np.mean(right)) if right else None,
                    "simulated_labels_correct": float(
                        np.mean([out.labels[i] == out.truth[i] for i in decided])
                    ),
                    "history_by_via": dict(sorted(Counter(via for via, _, _ in history).items())),
                    "history_events_per_sample": len(history) / len(samples) if samples else None,
                    # review: its voter; consensus: the voters in vote order; dispute: the best
                    "history_actors_right": float(np.mean(actors_right)) if actors_right else None,
                    "requests_failed": dict(problems),
                    "seconds": round(time.perf_counter() - started, 1),
                }
                print(f"replay {name}: {found[name]}", file=sys.stderr, flush=True)
    return found


def _ok(answer: Any) -> Any:
    """The JSON of a successful answer; anything else stops the replay with the answer's text."""
    if answer.status_code >= 300:
        raise RuntimeError(f"{answer.request.method} {answer.request.url}: {answer.text}")
    return answer.json()


def _listed(http: Any, fid: str, status: str) -> dict[str, str | None]:
    """Item id -> label name of the function's items with ``status``, every page."""
    found: dict[str, str | None] = {}
    while True:
        page = _ok(
            http.get(
                f"/v1/functions/{fid}/review",
                params={"status": status, "startIndex": len(found), "count": 1000},
            )
        )
        found.update({item["id"]: item["labelName"] for item in page["data"]})
        if not page["data"] or len(found) >= page["count"]:
            return found


def fashion_png(indices: np.ndarray) -> Callable[[int], bytes]:
    """PNG of the training file's image at ``indices[row]`` (the pool's real 28x28 images)."""
    from PIL import Image

    from bench.data import _FILES, DATA_DIR, read_idx

    images = read_idx(DATA_DIR / _FILES["train"][0])

    def png(row: int) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(images[int(indices[row])]).save(buffer, format="PNG")
        return buffer.getvalue()

    return png


def placeholder_png(row: int) -> bytes:
    """A small grey PNG, distinct per row, for data without images (synthetic vectors)."""
    from PIL import Image

    pixels = np.frombuffer(np.int64(row).tobytes() * 8, dtype=np.uint8).reshape(8, 8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


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
    replayed: dict[str, Outcome] = {}
    for n, arm in enumerate(ARMS):
        if args.arms and arm.name not in args.arms:
            continue
        sim = Simulation(classes, errors, np.random.default_rng([seed, n]))
        out = sim.run(arm, items, truth, gold, args.reviews)
        if arm.name in REPLAYED_ARMS:
            replayed[arm.name] = out
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
    found: dict[str, Any] = {"seed": seed, "arms": arms}
    if args.replay and seed == args.seeds[0] and replayed:
        backbone = getattr(data, "backbone", None)
        row = {f"pool-{i}": i for i in range(len(data.pool.labels))}
        png = fashion_png(data.pool.indices) if backbone == BACKBONE_SPEC else placeholder_png
        found["replay"] = replay(
            replayed,
            classes,
            lambda item: data.pool.vectors[row[item]],
            lambda item: png(row[item]),
            backbone=backbone or "tiny-clip",
        )
    found["seconds"] = round(time.perf_counter() - started, 1)
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
    parser.add_argument(
        "--no-replay",
        dest="replay",
        action="store_false",
        help="skip replaying the first seed's arms (a) and (b) through the service",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from bench.data import load_benchmark_data

    report = run(load_benchmark_data(args.pool, args.val, args.test), args)
    write_result(args.output, report)
    return report


if __name__ == "__main__":
    main()

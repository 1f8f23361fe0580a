"""B6: how well does winnow find wrong labels, and does fixing them give back the accuracy?

2,000 Fashion-MNIST images (efficientnet-lite0 vectors from :mod:`bench.data`) are labelled with
10% of the labels flipped, (a) uniformly to any other class and (b) between look-alike classes
(shirt / t-shirt, pullover / coat, sneaker / ankle boot / sandal, ...). The out-of-fold
probabilities come from :func:`learner.train_head`, the model selection every training runs.
On them, what :func:`learner.label_issues.find_label_issues` flags is scored (precision, recall,
F1 and the AUROC of its label quality against the truth) beside cleanlab's ``find_label_issues``
with its defaults on the same probabilities, and the AUROC of the plain self-confidence ranking.

Then a simulated reviewer fixes the suspects in budget-sized rounds (the service queues at most
``suspectBudget`` suspects per training): each round retrains, takes the most suspicious flagged
samples not reviewed before, and sets their true label. The share of the noise's accuracy cost
that comes back is ``(fixed - noisy) / (clean - noisy)`` on the test split.

Usage (from the repository root; cleanlab comes with the ``dev`` extra)::

    python -m bench.label_errors                 # seeds 0-2, writes bench/results/label_errors.json
    python -m bench.label_errors --seeds 100 101 102 --rounds 0 --output /tmp/b6-tuning.json
                                                 # detection only, on the seeds the method's
                                                 # weights and cut were chosen on
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.results_file import write_result  # noqa: E402
from learner import (  # noqa: E402
    TrainResult,
    label_issues,
    train_head,
)
from learner.label_issues import find_label_issues  # noqa: E402

OUTPUT = ROOT / "bench" / "results" / "label_errors.json"
NOISE_RATE = 0.10
# look-alike classes of Fashion-MNIST: a flipped label goes to one of its class's partners
LOOKALIKES = {
    "t-shirt/top": ("shirt",),
    "shirt": ("t-shirt/top", "pullover"),
    "pullover": ("coat", "shirt"),
    "coat": ("pullover",),
    "dress": ("coat",),
    "sneaker": ("ankle boot", "sandal"),
    "ankle boot": ("sneaker",),
    "sandal": ("sneaker",),
}
TARGET_F1_GAIN = 0.05
TARGET_RECOVERY = 0.80


def flip_labels(
    labels: np.ndarray, mode: str, rng: np.random.Generator, rate: float = NOISE_RATE
) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy labels, flipped mask)`` with ``rate`` of all samples flipped.

    Args:
        labels: true class name per sample.
        mode: ``"uniform"`` (any other class) or ``"lookalike"`` (a partner in ``LOOKALIKES``,
            flips drawn among the samples whose class has one).
        rng: the seed's generator.
        rate: share of all samples flipped.
    """
    labels = np.asarray(labels, dtype=object)
    classes = sorted(set(labels))
    n_flips = int(round(rate * len(labels)))
    eligible = np.arange(len(labels))
    if mode == "lookalike":
        eligible = np.flatnonzero([label in LOOKALIKES for label in labels])
    elif mode != "uniform":
        raise ValueError(f"unknown noise mode {mode!r}")
    chosen = rng.choice(eligible, size=n_flips, replace=False)
    noisy = labels.copy()
    for i in chosen:
        options = (
            [c for c in LOOKALIKES[labels[i]] if c in classes]
            if mode == "lookalike"
            else [c for c in classes if c != labels[i]]
        )
        noisy[i] = options[rng.integers(len(options))]
    return noisy, noisy != labels


def detection_scores(flagged: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 of a flag set against the truly flipped samples."""
    hits = int(np.sum(flagged & truth))
    precision = hits / max(1, int(flagged.sum()))
    recall = hits / max(1, int(truth.sum()))
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "flagged": int(flagged.sum())}


def auroc(quality: np.ndarray, truth: np.ndarray) -> float:
    """AUROC of "low quality = wrong label" (ties count half)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, -quality))


def compare_detectors(
    result: TrainResult, vectors: np.ndarray, noisy: np.ndarray, truth: np.ndarray, **method: Any
) -> dict[str, Any]:
    """winnow's flags vs cleanlab's defaults and self-confidence, on the same OOF probabilities."""
    from cleanlab.filter import find_label_issues as cleanlab_issues

    given = np.searchsorted(np.asarray(result.labels), noisy)
    issues = find_label_issues(
        result.oof_proba, given, vectors=vectors, temperature=result.temperature, **method
    )
    theirs = cleanlab_issues(given, result.oof_proba)
    self_confidence = result.oof_proba[np.arange(len(given)), given]
    return {
        "winnow": {
            **detection_scores(issues.flagged, truth),
            "auroc": auroc(issues.quality, truth),
        },
        "cleanlab": detection_scores(np.asarray(theirs), truth),
        "self_confidence_auroc": auroc(self_confidence, truth),
        "oof_accuracy_vs_noisy": float(result.metrics["accuracy"]),
        "chosen_head": result.candidate.key,
    }


def test_accuracy(result: TrainResult, test: Any) -> float:
    """Accuracy on the test split of the head a training would deploy."""
    return float(np.mean(result.head.predict(test.vectors) == test.labels))


def reviewer_rounds(
    first: TrainResult,
    vectors: np.ndarray,
    noisy: np.ndarray,
    true: np.ndarray,
    *,
    budget: int,
    max_rounds: int,
    seed: int,
    **method: Any,
) -> tuple[TrainResult, dict[str, Any]]:
    """Fix up to ``budget`` suspects per round, retraining between rounds, until none is new.

    Starts from ``first`` (the training on the noisy labels); returns the last training and a
    record of the rounds. A reviewed sample is not suggested again (the service's confirmation).
    """
    labels, result = noisy.copy(), first
    reviewed = np.zeros(len(labels), dtype=bool)
    rounds = []
    for _ in range(max_rounds):
        given = np.searchsorted(np.asarray(result.labels), labels)
        ranked = find_label_issues(
            result.oof_proba, given, vectors=vectors, temperature=result.temperature, **method
        )
        picks = [i for i in ranked.ranked_suspects() if not reviewed[i]][:budget]
        if not picks:
            break
        reviewed[picks] = True
        rounds.append({"reviewed": len(picks), "fixed": int(np.sum(labels[picks] != true[picks]))})
        labels[picks] = true[picks]
        result = train_head(vectors, labels, seed=seed)
    record = {
        "rounds": rounds,
        "reviewed": int(reviewed.sum()),
        "remaining_errors": int(np.sum(labels != true)),
    }
    return result, record


def summarise(values: list[float]) -> dict[str, Any]:
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
        "per_seed": [round(float(v), 4) for v in values],
    }


def run_seed(
    mode: str, seed: int, pool: Any, test: Any, args: argparse.Namespace, method: dict[str, Any]
) -> dict[str, Any]:
    """One seed of one noise type: detection figures and, with rounds, the accuracy recovered."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(pool.labels), size=min(args.samples, len(pool.labels)), replace=False)
    vectors, true = pool.vectors[pick], np.asarray(pool.labels[pick], dtype=object)
    noisy, truth = flip_labels(true, mode, rng)
    noisy_result = train_head(vectors, noisy, seed=seed)
    found = compare_detectors(noisy_result, vectors, noisy, truth, **method)
    found["flipped"] = int(truth.sum())
    if args.rounds:
        clean = test_accuracy(train_head(vectors, true, seed=seed), test)
        noisy_acc = test_accuracy(noisy_result, test)
        fixed_result, review = reviewer_rounds(
            noisy_result,
            vectors,
            noisy,
            true,
            budget=args.budget,
            max_rounds=args.rounds,
            seed=seed,
            **method,
        )
        fixed = test_accuracy(fixed_result, test)
        cost = clean - noisy_acc
        found["accuracy"] = {"clean": clean, "noisy": noisy_acc, "fixed": fixed}
        found["recovered"] = (fixed - noisy_acc) / cost if cost > 0 else None
        found["review"] = review
    found["seconds"] = round(time.perf_counter() - started, 1)
    print(f"{mode} seed {seed}: {_line(found)}", file=sys.stderr, flush=True)
    return found


def _line(found: dict[str, Any]) -> str:
    text = f"winnow F1 {found['winnow']['f1']:.3f} cleanlab F1 {found['cleanlab']['f1']:.3f}"
    if "accuracy" in found:
        acc = found["accuracy"]
        text += f"; acc clean {acc['clean']:.4f} noisy {acc['noisy']:.4f} fixed {acc['fixed']:.4f}"
    return text


def _mode_summary(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for who in ("winnow", "cleanlab"):
        for key in ("precision", "recall", "f1"):
            summary[f"{who}_{key}"] = summarise([s[who][key] for s in per_seed])
    summary["winnow_auroc"] = summarise([s["winnow"]["auroc"] for s in per_seed])
    summary["self_confidence_auroc"] = summarise([s["self_confidence_auroc"] for s in per_seed])
    summary["f1_gain"] = summarise([s["winnow"]["f1"] - s["cleanlab"]["f1"] for s in per_seed])
    recovered = [s["recovered"] for s in per_seed if s.get("recovered") is not None]
    if recovered:
        summary["recovered"] = summarise(recovered)
        for key in ("clean", "noisy", "fixed"):
            summary[f"accuracy_{key}"] = summarise([s["accuracy"][key] for s in per_seed])
        # the ratio of the mean accuracies: steadier than the mean of per-seed ratios when the
        # noise costs a few tenths of a point (a per-seed ratio then divides by test-set noise)
        clean, noisy, fixed = (
            summary[f"accuracy_{k}"]["mean"] for k in ("clean", "noisy", "fixed")
        )
        summary["recovered_of_means"] = (fixed - noisy) / (clean - noisy) if clean > noisy else None
        summary["reviewed"] = summarise([s["review"]["reviewed"] for s in per_seed])
        summary["errors_fixed"] = summarise(
            [1 - s["review"]["remaining_errors"] / s["flipped"] for s in per_seed]
        )
    return summary


def run(data: Any, args: argparse.Namespace, **method: Any) -> dict[str, Any]:
    """Both noise types on ``data`` (a :class:`bench.data.BenchmarkData`-like object)."""
    report: dict[str, Any] = {
        "bench": "B6 label errors",
        "machine": f"{platform.platform()}, {platform.processor() or 'cpu'}",
        "data": data.describe(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "method": {
            "knn_k": label_issues.DEFAULT_KNN_K,
            "knn_weight": label_issues.DEFAULT_KNN_WEIGHT,
            "other_weight": label_issues.DEFAULT_OTHER_WEIGHT,
            "flag_below": label_issues.DEFAULT_FLAG_BELOW,
            **method,
        },
        "noise_rate": NOISE_RATE,
        "modes": {},
    }
    work = [(mode, seed) for mode in ("uniform", "lookalike") for seed in args.seeds]
    if args.jobs > 1:  # seeds are independent: spread them over processes
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = [
                pool.submit(run_seed, mode, seed, data.pool, data.test, args, method)
                for mode, seed in work
            ]
            found = [future.result() for future in futures]
    else:
        found = [run_seed(mode, seed, data.pool, data.test, args, method) for mode, seed in work]
    for mode in ("uniform", "lookalike"):
        per_seed = [f for (m, _), f in zip(work, found, strict=True) if m == mode]
        report["modes"][mode] = {"per_seed": per_seed}
    return summarise_report(report)


def summarise_report(report: dict[str, Any]) -> dict[str, Any]:
    """Add each mode's summary over seeds and the target verdicts to a report's per-seed data."""
    targets = {}
    for mode, found in report["modes"].items():
        found["summary"] = summary = _mode_summary(found["per_seed"])
        targets[f"f1_gain_{mode}"] = summary["f1_gain"]["mean"] >= TARGET_F1_GAIN
        if summary.get("recovered_of_means") is not None:
            targets[f"recovered_{mode}"] = summary["recovered_of_means"] >= TARGET_RECOVERY
    report["targets"] = targets
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=2000, help="labelled samples per seed")
    parser.add_argument("--pool", type=int, default=5000, help="images the samples are drawn from")
    # the whole test file: random flips cost the head well under a point, which 2,000 test images
    # cannot resolve (their standard error is about half a point)
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--budget", type=int, default=100, help="suspects reviewed per round")
    parser.add_argument("--rounds", type=int, default=3, help="most review rounds (0: none)")
    parser.add_argument("--jobs", type=int, default=1, help="processes running seeds at once")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from bench.data import load_benchmark_data

    report = run(load_benchmark_data(args.pool, 0, args.test), args)
    write_result(args.output, report)
    return report


if __name__ == "__main__":
    main()

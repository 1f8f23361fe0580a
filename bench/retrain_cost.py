"""B4: how long does retraining take as a function grows?

Times :func:`learner.train_head` - the full cross-validated model selection over the default
candidate grid, the refit of the winner and its temperature scaling, exactly what a retrain runs -
on synthetic 512-d unit vectors from ~10 labels, each label a few overlapping clusters so the
problem is neither trivial nor hopeless (out-of-fold accuracy is reported). Each size is timed
``--repeats`` times on fresh data and the median is kept; the growth exponent is the slope of
log(time) against log(samples). Target: 1e4 samples in <= 10 s.

Usage (from the repository root)::

    python -m bench.retrain_cost            # 1e3, 3e3, 1e4 samples
    python -m bench.retrain_cost --full     # adds 3e4 and 1e5

Writes ``bench/results/retrain_cost.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/retrain_cost.py``
    sys.path.insert(0, str(ROOT))

from bench.results_file import write_result  # noqa: E402
from learner import train_head  # noqa: E402

TARGET_SIZE = 10_000
TARGET_SECONDS = 10.0


def labelled_vectors(
    n: int, dim: int, labels: int, modes: int, spread: float, rng: np.random.Generator
) -> tuple[np.ndarray, list[str]]:
    """``n`` unit vectors, each label a mixture of ``modes`` clusters with noise ``spread``."""
    centres = rng.standard_normal((labels, modes, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=2, keepdims=True)
    label_of = rng.integers(0, labels, n)
    mode_of = rng.integers(0, modes, n)
    noise = rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    vectors = centres[label_of, mode_of] + spread * noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, [f"label_{i}" for i in label_of]


def growth_exponent(sizes: list[int], seconds: list[float]) -> float | None:
    """Slope of log(seconds) against log(size): 1 is linear growth, 2 quadratic."""
    if len(sizes) < 2:
        return None
    slope, _ = np.polyfit(np.log(sizes), np.log(seconds), 1)
    return float(slope)


def time_size(n: int, args: argparse.Namespace, rng: np.random.Generator) -> dict[str, Any]:
    runs, results = [], []
    repeats = args.repeats if n <= 10_000 else max(1, args.repeats_large)
    for _ in range(repeats):
        X, y = labelled_vectors(n, args.dim, args.labels, args.modes, args.spread, rng)
        started = time.perf_counter()
        results.append(train_head(X, y, seed=args.seed))
        runs.append(time.perf_counter() - started)
    median_run = results[int(np.argsort(runs)[len(runs) // 2])]
    return {
        "samples": n,
        "seconds_median": float(np.median(runs)),
        "seconds_runs": [round(s, 3) for s in runs],
        "oof_accuracy": float(np.median([r.metrics["accuracy"] for r in results])),
        "chosen": median_run.candidate.key,
        # Where the median run's time went: cross-validation of each candidate, in seconds.
        "cv_seconds": {s.candidate.key: round(s.seconds, 3) for s in median_run.cv_scores},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 3_000, 10_000])
    parser.add_argument("--full", action="store_true", help="also run 3e4 and 1e5 samples")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--labels", type=int, default=10)
    parser.add_argument("--modes", type=int, default=3, help="clusters per label")
    parser.add_argument("--spread", type=float, default=4.0, help="noise relative to centres")
    parser.add_argument("--repeats", type=int, default=3, help="timings per size up to 1e4")
    parser.add_argument("--repeats-large", type=int, default=1, help="timings per larger size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "retrain_cost.json"
    )
    args = parser.parse_args(argv)
    sizes = sorted(set(args.sizes) | ({30_000, 100_000} if args.full else set()))
    rng = np.random.default_rng(args.seed)

    print(f"B4 retrain cost: train_head on {args.dim}-d vectors, {args.labels} labels")
    print(f"{'samples':>8} {'median s':>9} {'runs':>22} {'oof acc':>8}  chosen")
    rows = []
    for n in sizes:
        row = time_size(n, args, rng)
        rows.append(row)
        runs = " ".join(f"{s:.2f}" for s in row["seconds_runs"])
        print(
            f"{n:>8} {row['seconds_median']:>9.2f} {runs:>22} {row['oof_accuracy']:>8.3f}  "
            f"{row['chosen']}",
            flush=True,
        )
        slowest = sorted(row["cv_seconds"].items(), key=lambda kv: -kv[1])[:3]
        print("          slowest CV: " + ", ".join(f"{k} {v:.1f} s" for k, v in slowest))
    exponent = growth_exponent([r["samples"] for r in rows], [r["seconds_median"] for r in rows])
    at_target = next((r for r in rows if r["samples"] == TARGET_SIZE), None)
    report = {
        "bench": "B4 retrain cost",
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": rows,
        "growth_exponent": exponent,
        "target": {"samples": TARGET_SIZE, "max_seconds": TARGET_SECONDS},
        "passed": None if at_target is None else at_target["seconds_median"] <= TARGET_SECONDS,
        "machine": f"{platform.platform()}, {os.cpu_count()} CPU cores",
        "load_average_after": os.getloadavg(),
    }
    if exponent is not None:
        print(f"  growth exponent (log-log slope): {exponent:.2f}")
    write_result(args.output, report)
    print(f"  wrote {args.output}")
    return report


if __name__ == "__main__":
    main()

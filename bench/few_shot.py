"""Few shots from the zero-shot head: does starting from the label texts help at 2-32 shots?

A synthetic stand-in for CLIP (real weights cannot be downloaded here, and the offline backbone
has no text tower): ``--classes`` class centres on the unit sphere in ``--dim`` dimensions; image
embeddings are centres plus Gaussian noise plus a shared offset (CLIP's "modality gap"); each
label's text embedding is its centre plus its own noise plus the offset, so the zero-shot head is
good but not perfect. Per seed and shot count, three heads answer the same ``--test`` images:

* ``zero_shot``: :class:`learner.ZeroShotHead` on the text embeddings (no sample);
* ``trained``: :func:`learner.train_head` as a function without a text tower trains (the default
  candidate grid, cross-validated);
* ``trained_with_text``: :func:`learner.train_head` with the labels' text prior, so the grid also
  holds ``text_anchored_logistic`` (what a CLIP function trains).

Usage (from the repository root)::

    python -m bench.few_shot                    # 5 seeds, 2 4 8 16 32 shots per class
    python -m bench.few_shot --seeds 0 --shots 2 8

Writes ``bench/results/few_shot.json`` and prints a table (accuracy mean and std over seeds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/few_shot.py``
    sys.path.insert(0, str(ROOT))

from bench.results_file import write_result  # noqa: E402
from learner import TextPrior, ZeroShotHead, train_head  # noqa: E402
from learner.zero_shot import unit_length_rows  # noqa: E402

RESULT = ROOT / "bench" / "results" / "few_shot.json"


def synthetic_task(
    seed: int, *, classes: int, dim: int, noise: float = 0.3
) -> tuple[list[str], np.ndarray, Any]:
    """Label names, their text embeddings, and a sampler of ``(images, labels)`` per class: image
    clusters (spread ``noise``) around class centres; text weights are noisy copies of the
    centres seen through a shared offset (CLIP's modality gap), so zero-shot is good but not
    perfect."""
    rng = np.random.default_rng(seed)
    centres = unit_length_rows(rng.normal(size=(classes, dim)))
    gap = unit_length_rows(rng.normal(size=(1, dim))) * 0.8
    text = unit_length_rows(centres + 0.9 * unit_length_rows(rng.normal(size=(classes, dim))) + gap)
    names = [f"class{i}" for i in range(classes)]

    def draw(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        index = np.repeat(np.arange(classes), per_class)
        offsets = rng.normal(size=(len(index), dim)) * noise
        points = unit_length_rows(centres[index] + offsets + gap)
        return points, np.asarray(names, dtype=object)[index]

    return names, text, draw


def run(seeds: list[int], shots: list[int], *, classes: int, dim: int, test: int) -> dict:
    rows = []
    for seed in seeds:
        names, text, draw = synthetic_task(seed, classes=classes, dim=dim)
        X_test, y_test = draw(test // classes)
        zero_shot = ZeroShotHead(names, text)
        prior = TextPrior.of(zero_shot)
        zero_shot_accuracy = float(np.mean(zero_shot.predict(X_test) == y_test))
        for k in shots:
            X, y = draw(k)
            plain = train_head(X, list(y), seed=seed)
            with_text = train_head(X, list(y), seed=seed, text_prior=prior)
            rows.append(
                {
                    "seed": seed,
                    "shots": k,
                    "zero_shot": zero_shot_accuracy,
                    "trained": float(np.mean(plain.head.predict(X_test) == y_test)),
                    "trained_with_text": float(np.mean(with_text.head.predict(X_test) == y_test)),
                    "chosen_with_text": with_text.candidate.key,
                }
            )
            print(rows[-1], flush=True)
    summary = []
    for k in shots:
        at = [r for r in rows if r["shots"] == k]
        entry: dict[str, Any] = {"shots": k}
        for method in ("zero_shot", "trained", "trained_with_text"):
            values = np.array([r[method] for r in at])
            entry[method] = {"mean": float(values.mean()), "std": float(values.std())}
        entry["with_text_below_zero_shot"] = sum(
            r["trained_with_text"] < r["zero_shot"] for r in at
        )
        summary.append(entry)
    return {
        "task": {"classes": classes, "dim": dim, "test": test, "synthetic": True},
        "seeds": seeds,
        "summary": summary,
        "runs": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--shots", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--test", type=int, default=2000)
    args = parser.parse_args()
    report = run(args.seeds, args.shots, classes=args.classes, dim=args.dim, test=args.test)
    write_result(RESULT, report)
    print(f"{'shots':>5} {'zero-shot':>14} {'trained':>14} {'trained+text':>14} below-zs")
    for entry in report["summary"]:
        cells = [
            f"{entry[m]['mean']:.3f}±{entry[m]['std']:.3f}"
            for m in ("zero_shot", "trained", "trained_with_text")
        ]
        below = entry["with_text_below_zero_shot"]
        print(f"{entry['shots']:>5} {cells[0]:>14} {cells[1]:>14} {cells[2]:>14} {below}")
    print(f"wrote {RESULT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""B13 vector space: should the loop of a tuned function use its tuned vectors or the frozen ones?

Issue 31 leaves one choice to measurement. A fine-tuned challenger (:mod:`learner.finetune`)
has its own vectors, the unit-length features of its tuned tail; capture, novelty, proposals,
suspects and search could run on them (re-embedding the function's stored images when the
version deploys) or stay on the frozen backbone's vectors. This runs the two loop benchmarks
that reached the frozen backbone's ceiling on both spaces, with the same data and seeds:

The tuned tails are B13's recipe (:func:`learner.finetune.fine_tune`) for a fixed ``--epochs``
(3, the best epoch B13's early stopping found most often when tuning won anything), not early
stopped: where early stopping keeps the untuned tail (5 of B13's 9 runs), nothing new deploys
and the tuned space is the frozen one, so this measures the space of a tail that was tuned.

* **B7 novel classes** (:func:`bench.novelty.run_seed`): per scenario (``far``: trouser + bag
  held out, ``lookalike``: shirt + pullover) and seed, the function's labels are
  ``--per-class`` images of each of the 8 seen classes. The tuned tail is trained on exactly
  those labels; the traffic is every other image, embedded by the frozen backbone or by that
  tail. Reported: novelty AUROC and how many
  inputs of each unseen class came before its proposal (target < 300).
* **Capture rules** (:func:`bench.rule_ceiling.oracle_recalls`): a rule of 5 example images of
  one class, recall at precision >= 0.9 with the oracle threshold (each rule's best), per class
  and averaged, 10 classes x ``--rule-seeds``. The tuned tail is a function's that has
  ``--rule-labels`` random pool labels of all ten classes.

Fashion-MNIST (Debian package), EfficientNet-Lite0 cut before its last ``--tuned-blocks`` blocks;
trunk activations are cached as :mod:`bench.finetune` caches them (the same keys), so a run after
B13 computes only the validation split's.

Usage (from the repository root)::

    python -m bench.tuned_space              # seed 0, both scenarios and the rules, ~25 min

Writes ``bench/results/tuned_space.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/tuned_space.py``
    sys.path.insert(0, str(ROOT))

from bench import finetune, novelty, rule_ceiling  # noqa: E402
from bench.data import (  # noqa: E402
    _FILES,
    BACKBONE_SPEC,
    CLASS_NAMES,
    DATA_DIR,
    BenchmarkData,
    Split,
    read_idx,
    split_indices,
)
from bench.results_file import write_result  # noqa: E402

RESULT = ROOT / "bench" / "results" / "tuned_space.json"
SIZES = (3000, 1000, 500)  # pool, validation, test images


def tune(
    tower: Any,
    activations: dict[str, list[Any]],
    picks: np.ndarray,
    labels: np.ndarray,
    seed: int,
    args: argparse.Namespace,
) -> Any:
    """A tail tuned on the pool images ``picks`` for ``--epochs`` epochs, with their augmented
    views (B13's recipe without early stopping)."""
    from learner.finetune import TuneConfig

    config = TuneConfig(
        tuned_blocks=args.tuned_blocks,
        views=args.views,
        seed=seed,
        max_epochs=args.epochs,
        val_fraction=0.0,  # a fixed number of epochs: the space of a tail that was tuned
    )
    result = finetune.tune_on(tower.tail, activations["pool"], picks, labels, config)
    print(f"tuned on {len(picks)} labels: {result.summary()}", file=sys.stderr, flush=True)
    return result.model


def in_space(data: BenchmarkData, embed: Any, activations: dict[str, list[Any]]) -> BenchmarkData:
    """``data`` with every split's vectors replaced by ``embed`` of its activations."""
    return dataclasses.replace(
        data,
        **{
            name: dataclasses.replace(getattr(data, name), vectors=embed(activations[name][0]))
            for name in ("pool", "val", "test")
        },
    )


def load(tower: Any, args: argparse.Namespace) -> tuple[BenchmarkData, dict[str, list[Any]]]:
    """The frozen vectors of every split and the trunk activations behind them (the pool's with
    ``--views`` augmented views)."""
    import torch

    from embeddings import load_backbone
    from embeddings.tower_options import TowerOptions

    torch.set_num_threads(args.threads)
    backbone = load_backbone(BACKBONE_SPEC, device="cpu", tower=TowerOptions("fp32"))
    chosen = split_indices(*SIZES)
    activations = {
        "pool": finetune.trunk_activations(tower, backbone, "train", chosen["pool"], args.views),
        "val": finetune.trunk_activations(tower, backbone, "train", chosen["val"], 0),
        "test": finetune.trunk_activations(tower, backbone, "t10k", chosen["test"], 0),
    }
    names = np.asarray(CLASS_NAMES)
    train_labels = read_idx(DATA_DIR / _FILES["train"][1])
    test_labels = read_idx(DATA_DIR / _FILES["t10k"][1])

    def split(name: str, labels: np.ndarray) -> Split:
        vectors = finetune.frozen_vectors(tower.tail, activations[name][0])
        return Split(vectors, names[labels[chosen[name]]], chosen[name])

    data = BenchmarkData(
        pool=split("pool", train_labels),
        val=split("val", train_labels),
        test=split("test", test_labels),
        backbone=BACKBONE_SPEC,
    )
    return data, activations


def novelty_runs(
    data: BenchmarkData, activations: dict[str, list[Any]], tower: Any, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """B7 per scenario and seed, on the frozen vectors and on a tail tuned on the same labels."""
    options = argparse.Namespace(
        per_class=args.per_class,
        every=25,
        seen_only=2000,
        threshold=None,
        min_size=None,
        tightness=None,
    )
    runs = []
    for scenario, unseen in novelty.SCENARIOS.items():
        for seed in args.seeds:
            picks = novelty.labelled_picks(
                data.pool.labels, unseen, args.per_class, np.random.default_rng(seed)
            )
            model = tune(tower, activations, picks, data.pool.labels, seed, args)
            tuned = in_space(data, model.run, activations)
            for space, space_data in (("frozen", data), ("tuned", tuned)):
                run = novelty.run_seed(space_data, scenario, seed, options)
                runs.append({"space": space, **run})
                print(
                    f"B7 {scenario:9s} seed {seed} {space:6s}: AUROC {run['auroc_winnow']:.3f}, "
                    f"proposed after {run['proposed_after']}, seen-only proposals "
                    f"{run['seen_only_proposals_max']}",
                    flush=True,
                )
    return runs


def rule_runs(
    data: BenchmarkData, activations: dict[str, list[Any]], tower: Any, args: argparse.Namespace
) -> dict[str, Any]:
    """The rule ceiling on the frozen vectors and on a tail tuned on ``--rule-labels`` random
    pool labels."""
    rng = np.random.default_rng(args.seeds[0])
    picks = rng.choice(len(data.pool.labels), args.rule_labels, replace=False)
    model = tune(tower, activations, picks, data.pool.labels, args.seeds[0], args)
    tuned = in_space(data, model.run, activations)
    table = {}
    for space, space_data in (("frozen", data), ("tuned", tuned)):
        table[space] = rule_ceiling.oracle_recalls(space_data, args.rule_seeds)["mean_similarity"]
        row = table[space]
        print(
            f"rules {space:6s}: oracle recall {row['oracle_recall']:.3f} (shirt "
            f"{row['oracle_recall_per_class']['shirt']:.2f}), shared threshold precision "
            f"{row['shared_precision']:.3f} recall {row['shared_recall']:.3f}",
            flush=True,
        )
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--per-class", type=int, default=250, help="B7 labels per seen class")
    parser.add_argument("--rule-labels", type=int, default=2000)
    parser.add_argument("--rule-seeds", type=int, default=3)
    parser.add_argument("--tuned-blocks", type=int, default=3)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3, help="tuning epochs (fixed)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    import torch

    from bench.cpu_precision import machine
    from embeddings.tuning import split_tower

    torch.manual_seed(0)
    tower = split_tower(BACKBONE_SPEC, args.tuned_blocks)
    data, activations = load(tower, args)
    runs = novelty_runs(data, activations, tower, args)
    rules = rule_runs(data, activations, tower, args)
    summary = summarise(runs)
    report = {
        "bench": "B13 vector space",
        "dataset": "fashion-mnist (Debian package, idx format)",
        "backbone": BACKBONE_SPEC,
        "sizes": dict(zip(("pool", "val", "test"), SIZES, strict=True)),
        "seeds": args.seeds,
        "per_class": args.per_class,
        "rule_labels": args.rule_labels,
        "rule_seeds": args.rule_seeds,
        "tuned_blocks": args.tuned_blocks,
        "views": args.views,
        "epochs": args.epochs,
        "machine": {**machine(), "torch_threads": args.threads},
        "novelty": summary,
        "rules": rules,
        "novelty_runs": runs,
    }
    write_result(args.output, report)
    print(f"{'':22s} {'frozen':>24s} {'tuned':>24s}")
    for scenario, spaces in summary.items():
        cells = [
            f"AUROC {spaces[s]['auroc_winnow']['mean']:.3f}, "
            f"after {spaces[s]['proposed_after_worst']}"
            for s in ("frozen", "tuned")
        ]
        print(f"B7 {scenario:19s} {cells[0]:>24s} {cells[1]:>24s}")
    cells = [
        f"{r['oracle_recall']:.3f} (shirt {r['oracle_recall_per_class']['shirt']:.2f})"
        for r in rules.values()
    ]
    print(f"{'rules oracle recall':22s} {cells[0]:>24s} {cells[1]:>24s}")
    print(f"wrote {args.output}")


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per B7 scenario: its unseen classes and, per space, B7's own summary of that space's runs
    (:func:`bench.novelty.summarise`: AUROCs, the latest first proposal of an unseen class with
    and without a reviewer, the most seen-only proposals)."""
    spaces = ("frozen", "tuned")
    by_space = {
        space: novelty.summarise([r for r in runs if r["space"] == space]) for space in spaces
    }
    return {
        scenario: {"unseen": list(unseen), **{space: by_space[space][scenario] for space in spaces}}
        for scenario, unseen in novelty.SCENARIOS.items()
    }


if __name__ == "__main__":
    main()

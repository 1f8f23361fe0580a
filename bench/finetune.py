"""B13: a fine-tuned challenger against the frozen head, and the guard between them.

(Issue 31 names it B8, the number invoke latency already has.)

Fashion-MNIST (Debian package), EfficientNet-Lite0 cut before its last ``--tuned-blocks`` blocks
(:mod:`embeddings.tuning`). The trunk's activations of every pool image, of ``--views``
augmented views of each (:func:`embeddings.augment.augmented_views`, seeded by the file index)
and of the test images are computed once and cached under ``bench/cache/``; the frozen vectors
are the untuned tail's unit features of the same activations.

Per budget (labelled images drawn at random from the pool) and seed:

* the **champion** is what serves today: :func:`learner.train_head` (cross-validated selection)
  on the frozen vectors of every labelled image;
* the guard's **holdout** is a stratified 20% of the labelled images. The frozen recipe
  (``train_head`` again) and the tuned challenger (:func:`learner.finetune.fine_tune`, early
  stopped on its own validation split) are both fitted on the other 80%, and
  :func:`learner.champion.decide_wins` judges them on the holdout: the challenger deploys only
  when it is ahead with a one-sided sign test p < 0.05;
* both are then scored on the test split (t10k): the champion, and the challenger as judged.
  In hindsight the guard was wrong when it deployed a challenger that is not more accurate on
  the test split than the champion. With ``--refit`` the challenger is also trained again on
  every label for the epoch count early stopping found (:meth:`TuneResult.refit_config`, what
  a deploy would serve) and scored on the test split; ``--refit-from RESULT ...`` does only that
  for the runs an earlier result recorded (their recipe, the epochs their early stopping kept).

Costs, on this machine's cores in one run: tuning seconds per 1,000 labelled images (whole run,
views included) and per epoch; the trunk's seconds per 1,000 images (paid once per stored image
and view); serving throughput of a tuned function against a frozen one, interleaved rounds of
batches of 8, fp32 both, as the encoder runs them: the frozen function the backbone's tower, the
tuned one the shared trunk's graph (:class:`embeddings.tuning.SharedTrunk`) then its own tail's
(:class:`embeddings.tuning.TunedServing`; in the precisions ``--precision auto`` chooses:
``python -m bench.tuned_serving``); the tuned weights' bytes, what each deployed tuned function
adds to a replica.

Usage (from the repository root)::

    python -m bench.finetune                 # budgets 200 500 2000, seeds 0-2, pool 3000
    python -m bench.finetune --full          # adds 5000 labels (pool 8000)

Writes ``bench/results/finetune.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/finetune.py``
    sys.path.insert(0, str(ROOT))

from bench.data import (  # noqa: E402
    _FILES,
    BACKBONE_SPEC,
    CACHE_DIR,
    CLASS_NAMES,
    DATA_DIR,
    EmbeddingCache,
    file_digest,
    read_idx,
    split_indices,
)
from bench.results_file import write_result  # noqa: E402
from embeddings.augment import MAX_VIEWS  # noqa: E402

RESULT = ROOT / "bench" / "results" / "finetune.json"
HOLDOUT = 0.2  # share of the labelled images the guard judges on
TARGET_GAIN_PT = 4.0  # at TARGET_BUDGET labels
TARGET_BUDGET = 2000
TARGET_SERVING = 0.7  # tuned / frozen throughput
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"budgets": [200, 500, 2000], "pool": 3000},
    "full": {"budgets": [200, 500, 2000, 5000], "pool": 8000},
}


def trunk_activations(
    tower: Any, backbone: Any, part: str, indices: np.ndarray, views: int
) -> list[Any]:
    """float16 activations ``[originals, view 1, ..., view k]`` of file ``part``'s images
    ``indices``, computing (and caching) those not cached yet."""
    import torch
    from PIL import Image

    from embeddings import to_rgb
    from embeddings.augment import augmented_views
    from embeddings.tuning import trunk_activations as run_trunk

    image_path = DATA_DIR / _FILES[part][0]
    name = f"{BACKBONE_SPEC}-trunk{tower.tuned_blocks}-{file_digest(image_path)}"
    cache = EmbeddingCache(CACHE_DIR / name)
    keys = np.asarray(
        [int(i) * MAX_VIEWS + view for view in range(views + 1) for i in indices], np.int64
    )
    todo = cache.missing(keys)
    if len(todo):
        images = read_idx(image_path)
        started = time.perf_counter()
        for start in range(0, len(todo), 128):
            chunk = todo[start : start + 128]
            pixels = []
            for key in chunk:
                index, view = divmod(int(key), MAX_VIEWS)
                image = to_rgb(Image.fromarray(images[index], mode="L"))
                if view:
                    image = augmented_views(image, view, seed=index)[view - 1]
                pixels.append(backbone.preprocess(image))
            batches = [torch.stack(pixels[j : j + 32]) for j in range(0, len(pixels), 32)]
            cache.add(chunk, run_trunk(tower.trunk, batches).flatten(1).float().numpy())
            rate = (start + len(chunk)) / (time.perf_counter() - started)
            print(
                f"trunk {part}: {start + len(chunk)}/{len(todo)} ({rate:.1f} img/s)",
                file=sys.stderr,
                flush=True,
            )
    shape = _activation_shape(tower, backbone)
    flat = torch.from_numpy(cache.get(keys)).to(torch.float16)
    return list(flat.reshape(views + 1, len(indices), *shape).unbind(0))


def _activation_shape(tower: Any, backbone: Any) -> tuple[int, ...]:
    import torch
    from PIL import Image

    with torch.inference_mode():
        example = backbone.preprocess(Image.new("RGB", (28, 28)))[None]
        return tuple(tower.trunk(example).shape[1:])


def frozen_vectors(tail: Any, activations: Any) -> np.ndarray:
    """The untuned tail's unit features: the vectors winnow stores for these images."""
    import torch

    with torch.inference_mode():
        pooled = torch.cat(
            [tail(activations[i : i + 256].float()) for i in range(0, len(activations), 256)]
        )
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


def tune_on(
    tail: Any, activations: list[Any], rows: np.ndarray, labels: np.ndarray, config: Any
) -> Any:
    """:func:`learner.finetune.fine_tune` of a copy of ``tail`` on the pool images ``rows``:
    ``activations`` is ``[originals, view 1, ..., view k]`` as :func:`trunk_activations` gives.
    Each epoch is reported on stderr as it ends."""
    from learner.finetune import fine_tune

    def progress(epoch: dict[str, float]) -> None:
        print(
            f"  tuning {len(rows)} labels: epoch {int(epoch['epoch'])}, loss {epoch['loss']:.3f}, "
            f"validation accuracy {epoch['val_accuracy']:.3f}, {epoch['seconds']:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    return fine_tune(
        copy.deepcopy(tail),
        activations[0][rows],
        [view[rows] for view in activations[1:]],
        labels[rows],
        config,
        progress=progress,
    )


def one_run(
    data: dict[str, Any], tower: Any, budget: int, seed: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Champion, guard and challenger for ``budget`` random labels of the pool, ``seed``."""
    from sklearn.model_selection import train_test_split

    from learner import train_head
    from learner.champion import compare_on, decide_wins
    from learner.finetune import TuneConfig

    labels, vectors = data["labels"], data["vectors"]
    chosen = np.random.default_rng(seed).choice(len(labels), size=budget, replace=False)
    fit, holdout = train_test_split(
        chosen, test_size=HOLDOUT, stratify=labels[chosen], random_state=seed
    )
    champion = train_head(vectors[chosen], labels[chosen], seed=seed).head
    recipe = train_head(vectors[fit], labels[fit], seed=seed).head
    config = TuneConfig(
        tuned_blocks=args.tuned_blocks,
        views=args.views,
        label_smoothing=args.label_smoothing,
        mixup=args.mixup,
        seed=seed,
    )
    tuned = tune_on(tower.tail, data["activations"], fit, labels, config)
    truth = labels[holdout]
    comparison = compare_on(
        "holdout",
        np.ones(len(holdout), dtype=bool),
        truth=truth,
        challenger_pred=tuned.model.predict(data["activations"][0][holdout]),
        champion_pred=recipe.predict(vectors[holdout]),
    )
    decision = decide_wins(comparison)
    test_truth = data["test_labels"]
    champion_test = float(np.mean(champion.predict(data["test_vectors"]) == test_truth))
    tuned_test = float(np.mean(tuned.model.predict(data["test_activations"]) == test_truth))
    refit: dict[str, Any] = {}
    if args.refit:  # what would deploy: the recipe again on every label, as many epochs
        refit = refitted(data, tower, chosen, tuned.refit_config(), champion_test)
    print(
        f"budget {budget} seed {seed}: champion {100 * champion_test:.1f}%, tuned "
        f"{100 * tuned_test:.1f}% (best epoch {tuned.best_epoch}, {tuned.seconds:.0f} s); "
        f"guard {'deploys' if decision.deploy else 'keeps frozen'}"
        + (f"; refit on every label {100 * refit['refit_test_accuracy']:.1f}%" if refit else ""),
        flush=True,
    )
    return {
        "budget": budget,
        "seed": seed,
        "champion_test_accuracy": champion_test,
        "tuned_test_accuracy": tuned_test,
        "gain_pt": 100 * (tuned_test - champion_test),
        "deployed": decision.deploy,
        "guard_wrong": decision.deploy and tuned_test <= champion_test,
        "decision": decision.reason,
        "holdout": len(holdout),
        "tuning": tuned.summary(),
        "tuned_bytes": tuned.model.nbytes(),
        **refit,
    }


def refitted(
    data: dict[str, Any], tower: Any, chosen: np.ndarray, config: Any, champion_test: float
) -> dict[str, Any]:
    """The challenger's recipe trained again on every label of ``chosen`` with ``config`` (a
    :meth:`TuneResult.refit_config`: what the service deploys when the guard deploys the
    challenger), scored on the test split against the champion's ``champion_test``."""
    again = tune_on(tower.tail, data["activations"], chosen, data["labels"], config)
    truth = data["test_labels"]
    refit_test = float(np.mean(again.model.predict(data["test_activations"]) == truth))
    return {
        "refit_test_accuracy": refit_test,
        "refit_gain_pt": 100 * (refit_test - champion_test),
        "refit_seconds": again.seconds,
    }


def refit_recorded(data: dict[str, Any], tower: Any, recorded: dict[str, Any]) -> dict[str, Any]:
    """A recorded run (``--refit-from``) with its challenger refitted on every label for the
    epochs its early stopping kept, without tuning it again: the champion is trained anew here
    (the same labels and seed), the judged figures are the record's."""
    from learner import train_head
    from learner.finetune import TuneConfig

    budget, seed = recorded["budget"], recorded["seed"]
    labels = data["labels"]
    chosen = np.random.default_rng(seed).choice(len(labels), size=budget, replace=False)
    champion = train_head(data["vectors"][chosen], labels[chosen], seed=seed).head
    champion_test = float(np.mean(champion.predict(data["test_vectors"]) == data["test_labels"]))
    tuning = recorded["tuning"]
    config = TuneConfig(**tuning["config"]).refit(tuning["best_epoch"])
    refit = refitted(data, tower, chosen, config, champion_test)
    print(
        f"budget {budget} seed {seed}: champion {100 * champion_test:.1f}% (recorded "
        f"{100 * recorded['champion_test_accuracy']:.1f}%), judged tuned "
        f"{100 * recorded['tuned_test_accuracy']:.1f}%, refit for {config.max_epochs} epochs on "
        f"every label {100 * refit['refit_test_accuracy']:.1f}% ({refit['refit_seconds']:.0f} s)",
        flush=True,
    )
    return {**recorded, "refit_champion_test_accuracy": champion_test, **refit}


def serving_ratio(
    backbone: Any, tuned: Any, batch: Any, rounds: int, serving: Any | None = None
) -> dict[str, Any]:
    """Images/s of a frozen function (the backbone's tower) and a tuned one (the shared trunk
    cut at ``tuned``'s block, then ``tuned``'s tail, compiled by ``serving``, by default as the
    encoder does, :meth:`embeddings.tuning.TunedServing.for_backbone`), in interleaved rounds;
    the ratio is the median of the per-round ratios."""
    from embeddings.tower_options import served_label
    from embeddings.tuning import TunedServing, served_as

    serving = serving or TunedServing.for_backbone(backbone)
    tail = serving.tail(tuned)
    trunk = serving.trunk(tuned.tuned_blocks)

    def frozen() -> None:
        backbone.encode(batch)

    def tuned_function() -> None:
        tail.run(trunk.activations(batch))

    rates: dict[str, list[float]] = {"frozen": [], "tuned": []}
    frozen()  # warm-up
    tuned_function()
    for index in range(rounds):
        order = [("frozen", frozen), ("tuned", tuned_function)]
        for name, run in order if index % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            for _ in range(3):
                run()
            rates[name].append(3 * batch.shape[0] / (time.perf_counter() - started))
    ratios = [t / f for t, f in zip(rates["tuned"], rates["frozen"], strict=True)]
    return {
        "frozen_images_per_s": statistics.median(rates["frozen"]),
        "tuned_images_per_s": statistics.median(rates["tuned"]),
        "ratio": statistics.median(ratios),
        "ratio_rounds": ratios,
        "batch": int(batch.shape[0]),
        "rounds": rounds,
        "frozen_serves": served_label(*served_as(backbone)),
        "tuned_serves": tail.label,
        "tuned_path": "shared trunk graph + tuned tail, in the tower's precision",
    }


def trunk_seconds_per_1000(tower: Any, batch: Any, rounds: int) -> float:
    """Median seconds the trunk takes per 1,000 images, batches of ``batch``."""
    import torch

    times = []
    with torch.inference_mode():
        for _ in range(rounds):
            started = time.perf_counter()
            tower.trunk(batch)
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times) / batch.shape[0]


def summarise(runs: list[dict[str, Any]], budgets: list[int]) -> list[dict[str, Any]]:
    table = []
    for budget in budgets:
        mine = [run for run in runs if run["budget"] == budget]
        champion = [100 * run["champion_test_accuracy"] for run in mine]
        tuned = [100 * run["tuned_test_accuracy"] for run in mine]
        per_image = [
            run["tuning"]["seconds"] / run["tuning"]["train_images"] * 1000 for run in mine
        ]
        table.append(
            {
                "budget": budget,
                "seeds": len(mine),
                "champion_mean": statistics.mean(champion),
                "tuned_mean": statistics.mean(tuned),
                "gain_mean_pt": statistics.mean(
                    t - c for t, c in zip(tuned, champion, strict=True)
                ),
                "gains_pt": [run["gain_pt"] for run in mine],
                "refit_gain_mean_pt": statistics.mean(run["refit_gain_pt"] for run in mine)
                if all("refit_gain_pt" in run for run in mine)
                else None,
                "deployed": sum(run["deployed"] for run in mine),
                "guard_wrong": sum(run["guard_wrong"] for run in mine),
                "best_epochs": [run["tuning"]["best_epoch"] for run in mine],
                "tuning_seconds_per_1000_images": statistics.median(per_image),
                "epoch_seconds_per_1000_images": statistics.median(
                    epoch["seconds"] / run["tuning"]["train_images"] * 1000
                    for run in mine
                    for epoch in run["tuning"]["epochs"][1:]
                ),
            }
        )
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="budgets up to 5000, pool 8000")
    parser.add_argument("--budgets", type=int, nargs="+", help="override the preset's budgets")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--tuned-blocks", type=int, default=3)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--mixup", type=float, default=0.0, help="Beta concentration; 0: off")
    parser.add_argument(
        "--refit", action="store_true", help="also score the recipe refitted on every label"
    )
    parser.add_argument(
        "--refit-from",
        type=Path,
        nargs="+",
        default=[],
        help="results of earlier runs: refit their challengers (the budgets and seeds asked "
        "for) on every label for the epochs their early stopping kept, without tuning again; "
        "the recipe is theirs",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--rounds", type=int, default=15, help="serving-cost rounds")
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    import torch

    from bench.cpu_precision import machine
    from embeddings import load_backbone
    from embeddings.tower_options import TowerOptions
    from embeddings.tuning import split_tower
    from learner.finetune import TunedModel

    preset = PRESETS["full" if args.full else "quick"]
    budgets = sorted(args.budgets or preset["budgets"])
    recorded = recorded_runs(parser, args, preset["pool"], budgets)
    if not 0 <= args.views < MAX_VIEWS:  # cache keys hold the original and views 1..k
        parser.error(f"--views must be between 0 and {MAX_VIEWS - 1}")
    if budgets[-1] > preset["pool"]:
        parser.error(f"budgets must be at most the pool ({preset['pool']})")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    backbone = load_backbone(BACKBONE_SPEC, device="cpu", tower=TowerOptions("fp32"))
    tower = split_tower(BACKBONE_SPEC, args.tuned_blocks)
    splits = split_indices(preset["pool"], 0, args.test)
    activations = trunk_activations(tower, backbone, "train", splits["pool"], args.views)
    (test_activations,) = trunk_activations(tower, backbone, "t10k", splits["test"], 0)
    names = np.asarray(CLASS_NAMES, dtype=object)
    data = {
        "activations": activations,
        "labels": names[read_idx(DATA_DIR / _FILES["train"][1])[splits["pool"]]],
        "vectors": frozen_vectors(tower.tail, activations[0]),
        "test_activations": test_activations,
        "test_labels": names[read_idx(DATA_DIR / _FILES["t10k"][1])[splits["test"]]],
        "test_vectors": frozen_vectors(tower.tail, test_activations),
    }
    if args.refit_from:
        runs = [refit_recorded(data, tower, run) for run in recorded]
    else:
        runs = [
            one_run(data, tower, budget, seed, args) for budget in budgets for seed in args.seeds
        ]
    table = summarise(runs, budgets)
    batch = torch.stack([backbone.preprocess(im) for im in _sample_images(8)])
    # an untrained copy of the tail costs what any tuned one does
    tuned = TunedModel(copy.deepcopy(tower.tail), CLASS_NAMES, backbone.dim, args.tuned_blocks)
    serving = serving_ratio(backbone, tuned.eval(), batch, args.rounds)
    trunk_cost = trunk_seconds_per_1000(tower, batch, args.rounds)
    at_target = next((row for row in table if row["budget"] == TARGET_BUDGET), None)
    smallest = table[0]
    report = {
        "bench": "B13 fine-tuned challenger",
        "dataset": "fashion-mnist (Debian package, idx format)",
        "backbone": BACKBONE_SPEC,
        "pool": preset["pool"],
        "test": args.test,
        "seeds": args.seeds,
        "tuned_blocks": args.tuned_blocks,
        "views": args.views,
        "label_smoothing": args.label_smoothing,
        "mixup": args.mixup,
        "holdout": HOLDOUT,
        "machine": {**machine(), "torch_threads": args.threads},
        "table": table,
        "serving": serving,
        "trunk_seconds_per_1000_images": trunk_cost,
        "tuned_bytes": runs[0]["tuned_bytes"],
        "targets": {
            f"gain_at_{TARGET_BUDGET}_pt": TARGET_GAIN_PT,
            "guard_wrong_at_smallest_budget": 0,
            "serving_ratio": TARGET_SERVING,
        },
        "passes": {
            f"gain_at_{TARGET_BUDGET}_pt": None
            if at_target is None
            else at_target["gain_mean_pt"] >= TARGET_GAIN_PT,
            "guard_wrong_at_smallest_budget": smallest["guard_wrong"] == 0,
            "serving_ratio": serving["ratio"] >= TARGET_SERVING,
        },
        "runs": runs,
    }
    write_result(args.output, report)
    print(
        f"{'labels':>6} {'frozen %':>9} {'tuned %':>8} {'gain pt':>8} {'deployed':>9} {'wrong':>6}"
    )
    for row in table:
        print(
            f"{row['budget']:6d} {row['champion_mean']:9.1f} {row['tuned_mean']:8.1f} "
            f"{row['gain_mean_pt']:+8.1f} {row['deployed']:5d}/{row['seeds']} "
            f"{row['guard_wrong']:6d}"
        )
    print(
        f"serving tuned / frozen {serving['ratio']:.2f} ({serving['tuned_images_per_s']:.1f} vs "
        f"{serving['frozen_images_per_s']:.1f} img/s); trunk {trunk_cost:.1f} s per 1,000 "
        f"images; tuned weights {report['tuned_bytes'] / 1e6:.1f} MB"
    )
    print(f"wrote {args.output}")


def recorded_runs(
    parser: argparse.ArgumentParser, args: argparse.Namespace, pool: int, budgets: list[int]
) -> list[dict[str, Any]]:
    """The runs of ``--refit-from``'s results at ``budgets`` and ``--seeds``, in that order; their
    recipe becomes ``args``' (one recipe, this preset's pool, checked)."""
    import json

    if not args.refit_from:
        return []
    recipe = ("tuned_blocks", "views", "label_smoothing", "mixup", "test")
    results = [json.loads(path.read_text()) for path in args.refit_from]
    for key in recipe:
        values = {result.get(key) for result in results}
        if len(values) != 1:
            parser.error(f"--refit-from: the results differ in {key} ({sorted(map(str, values))})")
        setattr(args, key, values.pop())
    if any(result["pool"] != pool for result in results):
        parser.error(f"--refit-from: a result's pool is not this preset's ({pool}; --full?)")
    runs = {(run["budget"], run["seed"]): run for result in results for run in result["runs"]}
    wanted = [(budget, seed) for budget in budgets for seed in args.seeds]
    missing = [key for key in wanted if key not in runs]
    if missing:
        parser.error(f"--refit-from: no recorded run of (budget, seed) {missing}")
    return [runs[key] for key in wanted]


def _sample_images(count: int) -> list[Any]:
    from PIL import Image

    from embeddings import to_rgb

    images = read_idx(DATA_DIR / _FILES["t10k"][0])[:count]
    return [to_rgb(Image.fromarray(image, mode="L")) for image in images]


if __name__ == "__main__":
    main()

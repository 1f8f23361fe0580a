"""Augmented views at upload: do flipped, cropped, jittered copies of labelled images help?

Fashion-MNIST (Debian package) embedded by ``efficientnet-lite0`` (see :mod:`bench.data`). Per
seed, ``n`` labelled images per class (1, 2, 4, 8; the smaller sets are prefixes of the larger,
drawn from the pool split) train a head that answers the test split (t10k). Each labelled image
also gets ``k`` views from :func:`embeddings.augment.augmented_views` (seeded by its file index,
as the service would seed them from the image's digest; the first ``j`` views of ``k`` are the
views of ``j``), embedded through the same path as the originals and cached beside them. Heads:

* ``selected``: :func:`learner.train_head`, the service's cross-validated model selection, on the
  originals alone (``k = 0``) or on originals plus views with ``groups``/``is_view`` (views never
  scored, never trained on while their image is held out). It needs two images of a label, so it
  has no figure at one label per class;
* ``logistic``: one fixed multinomial logistic regression (the grid's default, ``C = 1``) fitted
  on the same rows without any selection, at every budget including one label per class.

Fashion-MNIST is centred greyscale clothing: a mirror image is still the same garment and mild
crops keep it recognisable; colour jitter only changes brightness and contrast on grey.

Upload cost: one image through ``to_rgb``, ``backbone.preprocess`` and ``backbone.encode`` (a
batch of one) against the same image plus ``k`` views made and embedded in one batch of ``1 + k``,
timed back to back ``--repeats`` times in one run; the ratio is the median of the paired ratios
(with its quartiles), which shared-CPU load swings move far less than the times themselves. It
runs on one torch thread (``--cost-threads``): on two shared cores, two intra-op threads spin-wait
whenever the other core is busy and a single 28x28 upload swung between 30 ms and 1.3 s.
Measured on a 28x28 Fashion-MNIST image and on a 640x480 photo-sized image (view making grows
with pixels; the backbone's input size does not).

Usage (from the repository root)::

    python -m bench.augmentation                          # 10 seeds, k = 2 4 8, 2000 test images
    python -m bench.augmentation --seeds 0 1 --views 2 --test 1000

Writes ``bench/results/augmentation.json`` and prints the tables.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/augmentation.py``
    sys.path.insert(0, str(ROOT))

from bench.data import (  # noqa: E402
    _FILES,
    BACKBONE_SPEC,
    CACHE_DIR,
    CLASS_NAMES,
    DATA_DIR,
    EmbeddingCache,
    embed_images,
    file_digest,
    read_idx,
    split_indices,
)
from bench.results_file import write_result  # noqa: E402
from embeddings.augment import MAX_VIEWS, augmented_views  # noqa: E402
from learner import Candidate, train_head  # noqa: E402

RESULT = ROOT / "bench" / "results" / "augmentation.json"
POOL = 3000  # originals are drawn from the first POOL images of bench.data's pool split
FIXED_HEAD = Candidate("logistic_regression", {"C": 1.0})


def view_key(index: int, view: int) -> int:
    """Cache key of view ``view`` of training image ``index``."""
    return index * MAX_VIEWS + view


def embed_views(indices: np.ndarray, k: int, *, threads: int) -> np.ndarray:
    """Vectors ``(len(indices), k, dim)`` of the first ``k`` views of each training image,
    embedding (and caching, under ``<spec>-views-<digest>``) those not cached yet."""
    image_path = DATA_DIR / _FILES["train"][0]
    cache = EmbeddingCache(CACHE_DIR / f"{BACKBONE_SPEC}-views-{file_digest(image_path)}")
    keys = np.asarray([view_key(int(i), j) for i in indices for j in range(k)], dtype=np.int64)
    todo = cache.missing(keys)
    if len(todo):
        _embed_view_keys(cache, read_idx(image_path), todo, threads)
    return cache.get(keys).reshape(len(indices), k, -1)


def _embed_view_keys(
    cache: EmbeddingCache, images: np.ndarray, todo: np.ndarray, threads: int
) -> None:
    import torch
    from PIL import Image

    from embeddings import load_backbone, to_rgb

    torch.set_num_threads(threads)
    backbone = load_backbone(BACKBONE_SPEC, device="cpu")
    started = time.perf_counter()
    for start in range(0, len(todo), 128):
        chunk = todo[start : start + 128]
        pixels = []
        for key in chunk:
            index, view = divmod(int(key), MAX_VIEWS)
            image = to_rgb(Image.fromarray(images[index], mode="L"))
            pixels.append(backbone.preprocess(augmented_views(image, view + 1, seed=index)[view]))
        vectors = np.concatenate(
            [backbone.encode(torch.stack(pixels[j : j + 32])) for j in range(0, len(pixels), 32)]
        )
        cache.add(chunk, vectors)
        done = start + len(chunk)
        rate = done / (time.perf_counter() - started)
        print(f"views embedded {done}/{len(todo)} ({rate:.1f} img/s)", file=sys.stderr, flush=True)


def labelled_sets(seed: int, labels: np.ndarray, most: int) -> np.ndarray:
    """Pool positions ``(classes, most)``: ``most`` random images of each class, in draw order."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [rng.permutation(np.flatnonzero(labels == name))[:most] for name in CLASS_NAMES]
    )


def training_rows(
    vectors: np.ndarray, views: np.ndarray, labels: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X, y, groups, is_view)``: each original followed by its first ``k`` views."""
    n, dim = vectors.shape
    rows = np.concatenate([vectors[:, None, :], views[:, :k, :]], axis=1).reshape(-1, dim)
    return (
        rows,
        np.repeat(labels, 1 + k),
        np.repeat(np.arange(n), 1 + k),
        np.tile(np.arange(1 + k) > 0, n),
    )


def accuracy_rows(
    seeds: list[int], budgets: list[int], ks: list[int], n_test: int, threads: int
) -> list[dict[str, Any]]:
    chosen = split_indices(POOL, 0, n_test)
    pool_vectors = embed_images("train", chosen["pool"], threads=threads)
    test_vectors = embed_images("t10k", chosen["test"], threads=threads)
    names = np.asarray(CLASS_NAMES)
    pool_labels = names[read_idx(DATA_DIR / _FILES["train"][1])[chosen["pool"]]]
    test_labels = names[read_idx(DATA_DIR / _FILES["t10k"][1])[chosen["test"]]]
    sets = {seed: labelled_sets(seed, pool_labels, max(budgets)) for seed in seeds}
    every = np.unique(np.concatenate([s.ravel() for s in sets.values()]))
    embedded = embed_views(chosen["pool"][every], max(ks), threads=threads)
    views_of = dict(zip(every, embedded, strict=True))
    rows = []
    for seed in seeds:
        for n in budgets:
            picked = sets[seed][:, :n].ravel()
            views = np.stack([views_of[i] for i in picked])
            for k in [0, *ks]:
                X, y, groups, is_view = training_rows(
                    pool_vectors[picked], views, pool_labels[picked], k
                )
                fixed = FIXED_HEAD.build()
                fixed.fit(X, y)
                row: dict[str, Any] = {
                    "seed": seed,
                    "per_class": n,
                    "k": k,
                    "rows": len(y),
                    "logistic": accuracy(fixed, test_vectors, test_labels),
                    "selected": None,
                    "selected_head": None,
                }
                if n >= 2:
                    result = train_head(
                        X,
                        list(y),
                        seed=seed,
                        groups=groups if k else None,
                        is_view=is_view if k else None,
                    )
                    row["selected"] = accuracy(result.head, test_vectors, test_labels)
                    row["selected_head"] = result.candidate.key
                rows.append(row)
                print(row, file=sys.stderr, flush=True)
    return rows


def accuracy(head: Any, X: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``X`` whose most probable label under ``head`` is the true one."""
    predicted = np.asarray(head.classes_)[np.argmax(head.predict_proba(X), axis=1)]
    return float(np.mean(predicted == labels))


def summarise(rows: list[dict[str, Any]], budgets: list[int], ks: list[int]) -> list[dict]:
    """Mean, std and paired gain over the ``k = 0`` baseline per head, budget and ``k``."""
    table = []
    for head in ("selected", "logistic"):
        for n in budgets:
            base = {r["seed"]: r[head] for r in rows if r["per_class"] == n and r["k"] == 0}
            if any(v is None for v in base.values()):
                continue
            for k in [0, *ks]:
                these = {r["seed"]: r[head] for r in rows if r["per_class"] == n and r["k"] == k}
                gains = [100 * (these[s] - base[s]) for s in these]
                values = [100 * v for v in these.values()]
                table.append(
                    {
                        "head": head,
                        "per_class": n,
                        "k": k,
                        "accuracy_mean": statistics.fmean(values),
                        "accuracy_std": statistics.stdev(values) if len(values) > 1 else 0.0,
                        "gain_mean_pt": statistics.fmean(gains),
                        "gain_std_pt": statistics.stdev(gains) if len(gains) > 1 else 0.0,
                        "seeds_better": sum(g > 0 for g in gains),
                        "seeds_worse": sum(g < 0 for g in gains),
                        "seeds": len(values),
                    }
                )
    return table


def upload_cost(ks: list[int], repeats: int, threads: int) -> list[dict[str, Any]]:
    """Median upload embedding time with and without ``k`` views, for two image sizes."""
    import torch
    from PIL import Image

    from embeddings import load_backbone, to_rgb

    torch.set_num_threads(threads)
    backbone = load_backbone(BACKBONE_SPEC, device="cpu")
    small = Image.fromarray(read_idx(DATA_DIR / _FILES["train"][0])[0], mode="L")
    images = {"28x28": small, "640x480": small.resize((640, 480), Image.Resampling.BICUBIC)}

    def upload(image: Image.Image, k: int) -> float:
        started = time.perf_counter()
        rgb = to_rgb(image)
        batch = [rgb, *augmented_views(rgb, k, seed=7)]
        backbone.encode(torch.stack([backbone.preprocess(view) for view in batch]))
        return time.perf_counter() - started

    results = []
    for size, image in images.items():
        for k in [0, *ks]:  # warm-up of every batch size
            upload(image, k)
        times: dict[int, list[float]] = {k: [] for k in [0, *ks]}
        ratios: dict[int, list[float]] = {k: [] for k in ks}
        for _ in range(repeats):
            # each k next to a plain upload of its own, so the shared CPU's load swings (other
            # jobs) hit both sides of a ratio alike
            for k in ks:
                plain, with_views = upload(image, 0), upload(image, k)
                times[0].append(plain)
                times[k].append(with_views)
                ratios[k].append(with_views / plain)
        for k in ks:
            results.append(
                {
                    "image": size,
                    "k": k,
                    "seconds_plain": statistics.median(times[0]),
                    "seconds_with_views": statistics.median(times[k]),
                    "ratio": statistics.median(ratios[k]),
                    "ratio_quartiles": statistics.quantiles(ratios[k], n=4)[::2],
                }
            )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--budgets", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--views", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for embedding")
    parser.add_argument("--cost-threads", type=int, default=1, help="torch threads for timing")
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    ks = sorted(args.views)
    if any(not 1 <= k <= MAX_VIEWS for k in ks):
        parser.error(f"--views must be between 1 and {MAX_VIEWS}")
    rows = accuracy_rows(args.seeds, sorted(args.budgets), ks, args.test, args.threads)
    table = summarise(rows, sorted(args.budgets), ks)
    cost = upload_cost(ks, args.repeats, args.cost_threads)
    report = {
        "dataset": "fashion-mnist (Debian package, idx format)",
        "backbone": BACKBONE_SPEC,
        "pool": POOL,
        "test": args.test,
        "seeds": args.seeds,
        "views": ks,
        "machine": {
            "python": platform.python_version(),
            "embedding_threads": args.threads,
            "upload_cost_threads": args.cost_threads,
        },
        "accuracy": table,
        "upload_cost": cost,
        "runs": rows,
    }
    write_result(args.output, report)
    print(
        f"{'head':9} {'n/cls':>5} {'k':>2} {'accuracy %':>14} {'gain pt':>13} {'better/worse':>12}"
    )
    for line in table:
        print(
            f"{line['head']:9} {line['per_class']:5d} {line['k']:2d} "
            f"{line['accuracy_mean']:7.2f} +- {line['accuracy_std']:4.2f} "
            f"{line['gain_mean_pt']:+6.2f} +- {line['gain_std_pt']:4.2f} "
            f"{line['seeds_better']:5d}/{line['seeds_worse']}"
        )
    for line in cost:
        print(
            f"upload {line['image']:8} k={line['k']}: {1000 * line['seconds_plain']:.1f} ms -> "
            f"{1000 * line['seconds_with_views']:.1f} ms (paired ratio {line['ratio']:.2f}x, "
            f"quartiles {line['ratio_quartiles'][0]:.2f}-{line['ratio_quartiles'][1]:.2f})"
        )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""CPU precision: image-tower throughput per runtime and precision, and what ``auto`` picks.

For each backbone, one copy per precision (torch's fp32, bf16, int8 where it applies, and ONNX
Runtime's ``onnx-fp32`` and ``onnx-int8``, see :mod:`embeddings.onnx_runtime`) encodes the same
batch of Fashion-MNIST test images (``--batch`` images, ``--threads`` torch threads) through
``backbone.encode``, the service's own call. Rounds interleave the precisions (in a rotating
order), so a busy shared machine slows them alike; each figure is the median over ``--repeats``
rounds and its ratio to fp32 is taken round by round. Per-image cosine to fp32 is measured on
``--cosine-images`` other test images. A backbone loaded with ``--precision auto`` and
``--runtime`` ``--auto-runtime`` (default ``auto``: both runtimes) then shows what the service
would choose on this machine (its own start-up probe, see :mod:`embeddings.precision`).

``--accuracy`` adds B1's accuracy check: the service's head (``learner.train_head``) trained on
``--accuracy-sets`` disjoint sets of ``--train`` pool images and scored on ``--test`` test images,
with EfficientNet-Lite0 vectors in fp32 and in ``--accuracy-precision`` (embedded once and
cached under ``bench/cache/`` by :mod:`bench.data`, in a directory of their own per precision).

Usage (from the repository root)::

    python -m bench.cpu_precision             # ViT-B-32 (random init), EfficientNet-Lite0
    python -m bench.cpu_precision --accuracy  # + the accuracy check
    python -m bench.cpu_precision --backbones tiny-clip --repeats 2 --out /tmp/p.json

Writes ``bench/results/cpu_precision.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/cpu_precision.py``
    sys.path.insert(0, str(ROOT))

from bench.results_file import write_result  # noqa: E402

RESULT = ROOT / "bench" / "results" / "cpu_precision.json"
DEFAULT_BACKBONES = "clip:ViT-B-32/random-init,efficientnet-lite0"
TARGET_SPEEDUP = 2.0  # over torch fp32, for a backbone without its own target below
TARGET_SPEEDUPS = {"clip:ViT-B-32 at random init": 3.0, "efficientnet-lite0": 2.5}  # issue 32
MIN_COSINE = 0.99
MAX_ACCURACY_DROP_PT = 0.5
_CPU_FLAGS = ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f", "avx2")


def machine() -> dict[str, Any]:
    """Platform, CPU model and the instruction sets that decide which precision wins."""
    import torch

    from embeddings.cpu_info import cpu_info

    cpu = cpu_info()
    return {
        "platform": platform.platform(),
        "cpu": cpu.model or "unknown",
        "cpu_flags": [flag for flag in _CPU_FLAGS if flag in cpu.flags],
        "cores": os.cpu_count(),
        "torch": torch.__version__,
    }


def fashion_images(count: int, offset: int = 0) -> list[Any]:
    """``count`` Fashion-MNIST test images as RGB Pillow images, from ``offset`` (28x28, upscaled
    by each backbone's own preprocessing, as invoke would)."""
    from PIL import Image

    from bench.data import DATA_DIR, read_idx
    from embeddings import to_rgb

    pixels = read_idx(DATA_DIR / "t10k-images-idx3-ubyte.gz")[offset : offset + count]
    return [to_rgb(Image.fromarray(image, mode="L")) for image in pixels]


def precisions_for(spec: str) -> list[str]:
    """The precisions worth timing for ``spec`` (torch's int8 quantises linear layers: a CNN has
    none; ONNX Runtime's quantises its convolutions)."""
    torch_int8 = [] if spec == "efficientnet-lite0" else ["int8"]
    return ["fp32", "bf16", *torch_int8, "onnx-fp32", "onnx-int8"]


def tower_options(label: str, batch: int) -> Any:
    """The :class:`TowerOptions` serving ``label`` (``bf16``, ``onnx-int8``) at ``batch``."""
    from embeddings.tower_options import TowerOptions, parse_label

    served = parse_label(label)
    if served is None:
        raise ValueError(f"not a precision to time: {label!r}")
    runtime, precision = served
    return TowerOptions(precision, probe_batch=batch, runtime=runtime)


def measure_backbone(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    """Images/s per precision (interleaved rounds), ratios to fp32, cosines and auto's choice."""
    import torch

    from bench.serving import served_backbone
    from embeddings import load_backbone
    from embeddings.tower_options import TowerOptions

    served, name = served_backbone(spec)
    precisions = precisions_for(spec) if args.precisions is None else args.precisions
    backbones = {
        precision: load_backbone(served, device="cpu", tower=tower_options(precision, args.batch))
        for precision in precisions
    }
    reference = backbones["fp32"]
    timing_batch = torch.stack([reference.preprocess(i) for i in fashion_images(args.batch)])
    cosine_batch = torch.stack(
        [reference.preprocess(i) for i in fashion_images(args.cosine_images, offset=args.batch)]
    )
    for backbone in backbones.values():  # warm-up: TorchScript optimises on the second run
        backbone.encode(timing_batch)
        backbone.encode(timing_batch)
    rounds: dict[str, list[float]] = {precision: [] for precision in precisions}
    for round_index in range(args.repeats):
        shift = round_index % len(precisions)
        for precision in precisions[shift:] + precisions[:shift]:
            started = time.perf_counter()
            for _ in range(args.calls):
                backbones[precision].encode(timing_batch)
            rounds[precision].append(args.calls * args.batch / (time.perf_counter() - started))
    expected = reference.encode(cosine_batch)
    results: dict[str, Any] = {}
    for precision in precisions:
        cosines = np.sum(backbones[precision].encode(cosine_batch) * expected, axis=1)
        ratios = [rate / base for rate, base in zip(rounds[precision], rounds["fp32"], strict=True)]
        results[precision] = {
            "images_per_s": statistics.median(rounds[precision]),
            "images_per_s_rounds": rounds[precision],
            "ratio_to_fp32": statistics.median(ratios),
            "ratio_rounds": ratios,
            "min_cosine": float(cosines.min()),
            "mean_cosine": float(cosines.mean()),
        }
    del backbones, reference
    auto = load_backbone(
        served,
        device="cpu",
        tower=TowerOptions("auto", probe_batch=args.batch, runtime=args.auto_runtime),
    )
    choice = auto.precision  # type: ignore[attr-defined]
    chosen = results.get(choice.label, {})
    return {
        "backbone": name,
        "spec": served,
        "target_speedup": TARGET_SPEEDUPS.get(name, TARGET_SPEEDUP),
        "results": results,
        "auto": choice.describe(),
        "auto_ratio_to_fp32": chosen.get("ratio_to_fp32"),
        "auto_min_cosine": chosen.get("min_cosine"),
    }


def accuracy_check(args: argparse.Namespace) -> dict[str, Any]:
    """B1's head on EfficientNet-Lite0 vectors in fp32 and in ``args.accuracy_precision``.

    One training set of 1,000 images is a noisy judge: the head's cross-validated choice (a
    regularisation strength, a head family) can flip between the two sets of vectors and move the
    accuracy by about a point on its own. So the head is trained on ``--accuracy-sets`` disjoint
    sets of ``--train`` pool images, each scored on the same ``--test`` images, two ways: each
    precision's own cross-validated choice (what the service does), and the fp32 set's choice
    refitted on the other vectors (the vectors' own effect). The verdict is the median difference
    of the service's way.
    """
    from bench.data import CLASS_NAMES, DATA_DIR, embed_images, read_idx, split_indices
    from learner import train_head

    low = args.accuracy_precision
    chosen = split_indices(args.train * args.accuracy_sets, 0, args.test)
    names = np.asarray(CLASS_NAMES)
    y_pool = names[read_idx(DATA_DIR / "train-labels-idx1-ubyte.gz")[chosen["pool"]]]
    y_test = names[read_idx(DATA_DIR / "t10k-labels-idx1-ubyte.gz")[chosen["test"]]]
    vectors = {
        precision: (
            embed_images("train", chosen["pool"], precision=precision, threads=args.threads),
            embed_images("t10k", chosen["test"], precision=precision, threads=args.threads),
        )
        for precision in ("fp32", low)
    }
    per_set = []
    for k in range(args.accuracy_sets):
        part = slice(k * args.train, (k + 1) * args.train)
        y = list(y_pool[part])
        fp32 = train_head(vectors["fp32"][0][part], y, seed=0)
        own = train_head(vectors[low][0][part], y, seed=0)
        same = train_head(vectors[low][0][part], y, candidates=[fp32.candidate], seed=0)
        fp32_pred = fp32.head.predict(vectors["fp32"][1])
        own_pred = own.head.predict(vectors[low][1])
        per_set.append(
            {
                "fp32": float(np.mean(fp32_pred == y_test)),
                low: float(np.mean(own_pred == y_test)),
                f"{low}_fp32_head": float(np.mean(same.head.predict(vectors[low][1]) == y_test)),
                "fp32_head": f"{fp32.candidate.name}({fp32.candidate.params})",
                f"{low}_head": f"{own.candidate.name}({own.candidate.params})",
                "prediction_agreement": float(np.mean(fp32_pred == own_pred)),
            }
        )

    def median_pt(key: str) -> float:
        return statistics.median(100 * (s[key] - s["fp32"]) for s in per_set)

    report: dict[str, Any] = {
        "train": args.train,
        "sets": args.accuracy_sets,
        "test": args.test,
        "precision": low,
        "per_set": per_set,
        "fp32": {"accuracy": statistics.median(s["fp32"] for s in per_set)},
        low: {"accuracy": statistics.median(s[low] for s in per_set)},
        "difference_pt": median_pt(low),
        "same_head_difference_pt": median_pt(f"{low}_fp32_head"),
        "prediction_agreement": statistics.median(s["prediction_agreement"] for s in per_set),
    }
    report["passed"] = abs(report["difference_pt"]) <= MAX_ACCURACY_DROP_PT
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        f"CPU precision: batch {report['config']['batch']}, {report['config']['threads']} "
        f"threads, median of {report['config']['repeats']} rounds"
    ]
    for entry in report["backbones"]:
        parts = [
            f"{precision} {r['images_per_s']:.1f} img/s (x{r['ratio_to_fp32']:.2f}, "
            f"cos >= {r['min_cosine']:.4f})"
            for precision, r in entry["results"].items()
        ]
        lines.append(f"  {entry['backbone']}: " + "; ".join(parts))
        lines.append(
            f"    auto (runtime {entry['auto']['requested_runtime']}) chooses "
            f"{entry['auto']['serves']} (target x{entry['target_speedup']})"
        )
    accuracy = report.get("accuracy")
    if accuracy:
        low = accuracy["precision"]
        lines.append(
            f"  B1 head accuracy (median of {accuracy['sets']} sets of {accuracy['train']} train / "
            f"{accuracy['test']} test): fp32 {accuracy['fp32']['accuracy']:.2%}, {low} "
            f"{accuracy[low]['accuracy']:.2%} ({accuracy['difference_pt']:+.2f} pt; with the "
            f"fp32 head {accuracy['same_head_difference_pt']:+.2f} pt)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default=DEFAULT_BACKBONES, help="comma-separated specs")
    parser.add_argument(
        "--precisions", default=None, help="comma-separated (default: all that apply)"
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=3, help="batches per precision per round")
    parser.add_argument("--cosine-images", type=int, default=64)
    parser.add_argument("--auto-runtime", default="auto", help="runtime of the auto load")
    parser.add_argument("--accuracy", action="store_true", help="add B1's accuracy check")
    parser.add_argument("--accuracy-precision", default="bf16")
    parser.add_argument("--train", type=int, default=1000, help="images per training set")
    parser.add_argument("--accuracy-sets", type=int, default=5, help="disjoint training sets")
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    if args.precisions is not None:
        args.precisions = ["fp32", *[p for p in args.precisions.split(",") if p != "fp32"]]

    import torch

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    entries = [measure_backbone(spec.strip(), args) for spec in args.backbones.split(",")]
    report: dict[str, Any] = {
        "config": {
            key: getattr(args, key)
            for key in (
                "backbones",
                "batch",
                "threads",
                "repeats",
                "calls",
                "cosine_images",
                "auto_runtime",
            )
        },
        "machine": f"{platform.platform()}, {os.cpu_count()} CPU cores",
        "cpu": machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "targets": {
            "speedup": TARGET_SPEEDUP,
            "min_cosine": MIN_COSINE,
            "max_accuracy_drop_pt": MAX_ACCURACY_DROP_PT,
        },
        "backbones": entries,
    }
    if args.accuracy:
        report["accuracy"] = accuracy_check(args)
    write_result(args.out, report)
    print("\n".join(summary_lines(report)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Run winnow's benchmarks and regenerate the Performance page (docs/performance.md).

* B1/B1b label efficiency (``bench.label_efficiency``): labels saved by invoke capture;
* B2 serving (``bench.serving``): the running service's invoke throughput vs a raw backbone loop,
  for the offline backbone and for the default CLIP architecture at random init (the same compute
  as its real weights, which cannot be downloaded here);
* B3 capture cost (``bench.capture_cost``): capture decision time as a share of the *measured*
  embedding time of the backbone, flat vs HNSW index, recall@10;
* B4 retrain cost (``bench.retrain_cost``): model selection time against sample count;
* B5 cold start (``bench.cold_start``): the first 10-80 labels from winnow's queue, starting with
  no labels, against random ones; precision and recall of a capture rule;
* B6 label errors (``bench.label_errors``): mislabel suspects against cleanlab, and the accuracy
  a reviewer fixing them gets back.
* B7 novel classes (``bench.novelty``): calibrated novelty against max-probability and kNN
  distance for two unseen Fashion-MNIST classes, and how soon they are proposed as new labels.

Usage (from the repository root; ``make bench ARGS="..."`` passes the same flags)::

    python -m bench.run                  # small defaults, ~15-20 min on 2 CPU cores
    python -m bench.run --full           # larger sizes (1e6 vectors, 1e5 samples): hours
    python -m bench.run --only b2,b4     # a selection

Each bench writes ``bench/results/<name>.json`` (``<name>_full.json`` with ``--full``, so the two
sizes of run keep their own results); a failing bench is reported and the others still run (the
exit status is 1 if any failed).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/run.py``
    sys.path.insert(0, str(ROOT))

from bench import report as performance_page  # noqa: E402
from bench.results_file import write_result  # noqa: E402
from embeddings.backbones import DEFAULT_CLIP_SPEC  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BENCHES = ("b1", "b2", "b3", "b4", "b5", "b6", "b7")


def result_path(name: str, args: argparse.Namespace) -> Path:
    """Where a bench writes: ``--full`` results are kept beside the quick run's, not over them
    (so ``make bench`` after a ``--full`` run does not drop the larger sizes from the docs)."""
    return RESULTS / (f"{name}_full.json" if args.full else f"{name}.json")


def run_b1(args: argparse.Namespace, _state: dict[str, Any]) -> None:
    from bench import label_efficiency

    preset = "--full" if args.full else "--quick"
    label_efficiency.main([preset, "--output", str(result_path("label_efficiency", args))])


def run_b2(args: argparse.Namespace, state: dict[str, Any]) -> None:
    from bench import serving

    common = ["--batch-size", str(args.batch_size), "--bare"]  # the ceiling beside winnow
    if args.full:
        common += ["--requests", "160", "--rounds", "9"]
    result = serving.main(["--backbone", args.backbone, *common])
    state["raw_ms_per_image"] = 1000.0 / result["raw"]["images_per_s"]
    if args.clip_arch:
        spec = f"clip:{args.clip_arch}/{serving.RANDOM_INIT}"
        output = RESULTS / "serving_clip.json"
        serving.main(["--backbone", spec, *common, "--output", str(output)])


def run_b3(args: argparse.Namespace, state: dict[str, Any]) -> None:
    from bench import capture_cost

    embedding = measure_embedding(args, state.get("raw_ms_per_image"))
    argv = ["--embed-ms", f"{embedding['ms_per_image']:.3f}"]
    argv += ["--output", str(result_path("capture_cost", args))]
    if args.full:
        argv.append("--full")
    if capture_cost.main(argv) != 0:
        raise RuntimeError("bench.capture_cost failed")


def measure_embedding(args: argparse.Namespace, from_b2: float | None) -> dict[str, Any]:
    """Milliseconds per image of decode + preprocess + encode at the service's batch size.

    Reuses B2's raw loop when it ran in this process (same machine state), else measures.
    """
    if from_b2 is not None:
        ms, how = from_b2, "median raw-loop rate of B2 in the same run"
    else:
        from bench.serving import best_raw_throughput, make_images, raw_throughput
        from embeddings import load_backbone

        backbone = load_backbone(args.backbone)
        images = [data for data, _ in make_images(64, 224, seed=0)]
        raw_throughput(backbone, images[: args.batch_size], args.batch_size, 40_000_000)
        run = best_raw_throughput(backbone, images, args.batch_size, 40_000_000)
        ms = 1000.0 / run["images_per_s"]
        how = "64 224x224 JPEGs, fastest raw-loop variant, after a warm-up batch"
    embedding = {
        "backbone": args.backbone,
        "batch_size": args.batch_size,
        "ms_per_image": round(ms, 3),
        "measured": how,
    }
    write_result(result_path("embedding_time", args), embedding)
    print(f"B3: embedding time {ms:.1f} ms/image ({args.backbone}, {how})", flush=True)
    return embedding


def run_b4(args: argparse.Namespace, _state: dict[str, Any]) -> None:
    from bench import retrain_cost

    argv = ["--output", str(result_path("retrain_cost", args))]
    retrain_cost.main([*argv, "--full"] if args.full else argv)


def run_b5(_args: argparse.Namespace, _state: dict[str, Any]) -> None:
    from bench import cold_start

    cold_start.main([])  # one size: a 5,000-image stream, 5 seeds


def run_b6(_args: argparse.Namespace, _state: dict[str, Any]) -> None:
    from bench import label_errors

    label_errors.main([])  # one size: 2,000 labelled samples, as the issue specifies


def run_b7(_args: argparse.Namespace, _state: dict[str, Any]) -> None:
    from bench import novelty

    novelty.main([])  # both scenarios, 3 seeds


RUNNERS: dict[str, Callable[[argparse.Namespace, dict[str, Any]], None]] = {
    "b1": run_b1,
    "b2": run_b2,
    "b3": run_b3,
    "b4": run_b4,
    "b5": run_b5,
    "b6": run_b6,
    "b7": run_b7,
}


def parse_only(text: str) -> list[str]:
    chosen = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown bench(es) {unknown}; choose from {BENCHES}")
    return [name for name in BENCHES if name in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="larger sizes (takes hours)")
    parser.add_argument("--only", type=parse_only, default=list(BENCHES), help="e.g. b2,b4")
    parser.add_argument("--backbone", default="efficientnet-lite0", help="for B2 and B3")
    parser.add_argument("--batch-size", type=int, default=8, help="for B2 and B3")
    parser.add_argument(
        "--clip-arch",
        default=DEFAULT_CLIP_SPEC.removeprefix("clip:").split("/")[0],
        help="open_clip architecture B2 also serves at random init ('' to skip)",
    )
    parser.add_argument("--no-page", action="store_true", help="do not rewrite docs/performance.md")
    args = parser.parse_args(argv)

    state: dict[str, Any] = {}
    failed = []
    for name in args.only:
        print(f"\n=== {name.upper()} ===", flush=True)
        started = time.perf_counter()
        try:
            RUNNERS[name](args, state)
        except Exception:
            traceback.print_exc()
            failed.append(name)
        print(f"=== {name.upper()} took {time.perf_counter() - started:.0f} s ===", flush=True)
    if not args.no_page:
        performance_page.write_page()
        print(f"\nupdated {performance_page.PAGE}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

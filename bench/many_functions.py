"""B9: many functions on one replica: resident memory under the snapshot budget, first invokes of
evicted functions, and every answer from the function's own version.

One in-process service (``Runtime`` + ``service.startup.start``: the serving worker and its
eviction run for real, on SQLite in a temporary data dir) holds ``--functions`` functions, each
with three Fashion-MNIST classes of its own choosing, ``--samples`` labelled samples and a head
trained by the service's own training (cross-validated selection); a third of them are trained
twice, so versions 1 and 2 both serve. Then ``--invokes`` invokes per function arrive through
``service.invoke.invoke_batch`` (capture on, the default policy) in bursts of ``--burst`` to one
function at a time, in random order: most functions idle at any moment, as on a hosted service.

The encoder is replaced by a table of real EfficientNet-Lite0 embeddings of the Fashion-MNIST
images (``bench/data.py``'s cache): the bench measures what the serving state costs, not the
backbone (B2 measures that). Every invoke is checked: its ``modelVersion`` must be the version the
function deployed and its label one of the function's own. Reported: RSS of the process (sampled
every 500 invokes) against the budget, the worker's estimate of the resident bytes, evictions,
and the latency of invokes that found their function resident vs. not (p50 / p99).

Usage::

    python -m bench.many_functions                      # 1000 functions x 200 invokes
    python -m bench.many_functions --functions 50 --invokes 40 --budget-mb 16   # a quick look
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.data import _FILES, CLASS_NAMES, DATA_DIR, embed_images, read_idx  # noqa: E402
from bench.results_file import write_result  # noqa: E402

RESULT = ROOT / "bench" / "results" / "many_functions.json"
IMAGES = 3000  # distinct Fashion-MNIST images the functions' samples and traffic come from


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def live_rss_bytes() -> int:
    """RSS once freed heap memory went back to the system (glibc's ``malloc_trim``): the
    baseline traffic is measured from. Without it, memory freed after the setup (embedding the
    images in this process when the cache is cold: 480 MiB) stays in the RSS and traffic reuses
    it unseen."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: freed memory may count
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_bytes()


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def fashion(count: int) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """``count`` training images as PNG bytes, their class names and real embeddings."""
    images = read_idx(DATA_DIR / _FILES["train"][0])
    labels = read_idx(DATA_DIR / _FILES["train"][1])
    chosen = np.arange(count)
    vectors = embed_images("train", chosen, threads=2, verbose=True)
    names = np.asarray(CLASS_NAMES)[labels[chosen]]
    return [png(images[i]) for i in chosen], names, vectors


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ms = np.asarray(values) * 1000.0
    return {
        "count": len(values),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--functions", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=30, help="labelled samples per function")
    parser.add_argument("--invokes", type=int, default=200, help="invokes per function")
    parser.add_argument("--burst", type=int, default=20, help="invokes in a row to one function")
    parser.add_argument("--budget-mb", type=float, default=256.0, help="--snapshot-memory-mb")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import service.invoke
    from embeddings import InvalidImage
    from service.functions import create_function
    from service.runtime import Runtime
    from service.samples import add_sample
    from service.serving import settle
    from service.settings import Settings
    from service.startup import start
    from service.training import train_function
    from store import LabelChange

    images, names, vectors = fashion(IMAGES)
    by_bytes = {data: vectors[i] for i, data in enumerate(images)}

    def embed_from_table(_rt: Any, _function: Any, batch: list[bytes], *_tail: Any) -> list[Any]:
        return [by_bytes.get(data, InvalidImage("not in the table")) for data in batch]

    service.invoke.embed_images_with = embed_from_table  # type: ignore[assignment]
    service.samples.embed_images = embed_from_table  # type: ignore[attr-defined]

    rng = np.random.default_rng(args.seed)
    classes = np.asarray(CLASS_NAMES)
    with tempfile.TemporaryDirectory(prefix="winnow-many-") as data_dir:
        settings = Settings(
            data_dir=Path(data_dir),
            # loaded (no text tower: no version 0) but never run: the table answers
            backbone="efficientnet-lite0",
            retrain_interval=0,
            seed=str(args.seed),
            admin_key="bench-admin-key",
            snapshot_memory_mb=args.budget_mb,
        )
        rt = Runtime(settings)
        start(rt)
        try:
            setup_started = time.perf_counter()
            functions: dict[str, dict[str, Any]] = {}
            for f in range(args.functions):
                own = rng.choice(classes, size=3, replace=False)
                pool = np.flatnonzero(np.isin(names, own))
                function = create_function(rt, name=f"f{f}", labels=[], backbone=None)
                picks = rng.choice(pool, size=args.samples, replace=False)
                for i in picks:
                    add_sample(
                        rt,
                        function.id,
                        data=images[i],
                        label_name=f"{f}:{names[i]}",
                        external_id=None,
                        change=LabelChange(("bench",), "import"),
                    )
                version = 0
                for _ in range(2 if f % 3 == 0 else 1):
                    record = train_function(rt, function.id)
                    assert record is not None
                    if record.status == "deployed":
                        version = record.version
                traffic = rng.choice(pool, size=args.invokes)
                functions[function.id] = {"version": version, "prefix": f"{f}:", "traffic": traffic}
                if f % 100 == 99:
                    print(f"set up {f + 1} functions, {time.perf_counter() - setup_started:.0f} s")
            assert settle(rt, timeout=600)
            setup_seconds = time.perf_counter() - setup_started
            rss_before = live_rss_bytes()

            bursts = [
                (fid, start) for fid in functions for start in range(0, args.invokes, args.burst)
            ]
            rng.shuffle(bursts)
            resident_latency: list[float] = []
            loaded_latency: list[float] = []
            wrong = 0
            rss_samples, estimate_samples, resident_counts = [], [], []
            done = 0
            traffic_started = time.perf_counter()
            for fid, start in bursts:
                expected = functions[fid]
                for i in expected["traffic"][start : start + args.burst]:
                    resident = fid in rt.serving
                    began = time.perf_counter()
                    (answer,) = service.invoke.invoke_batch(rt, fid, [images[i]])
                    (resident_latency if resident else loaded_latency).append(
                        time.perf_counter() - began
                    )
                    if isinstance(answer, Exception) or (
                        answer.model_version != expected["version"]
                        or not str(answer.label_name).startswith(expected["prefix"])
                    ):
                        wrong += 1
                    done += 1
                    if done % 500 == 0:
                        rss_samples.append(rss_bytes())
                        estimate_samples.append(rt.serving.total_bytes())
                        resident_counts.append(len(rt.serving.resident()))
                if len(rss_samples) and len(rss_samples) % 40 == 0 and done % 500 == 0:
                    print(f"{done} invokes, RSS {rss_samples[-1] / 2**20:.0f} MiB")
            traffic_seconds = time.perf_counter() - traffic_started
            settle(rt, timeout=600)
            evictions = rt.metrics.evictions._value.get()  # noqa: SLF001 (prometheus_client)
        finally:
            rt.close()

    budget = args.budget_mb * 2**20
    report = {
        "bench": "B9 many functions on one replica",
        "functions": args.functions,
        "samples_per_function": args.samples,
        "invokes_per_function": args.invokes,
        "burst": args.burst,
        "budget_mib": args.budget_mb,
        "setup_seconds": round(setup_seconds, 1),
        "traffic_seconds": round(traffic_seconds, 1),
        "invokes": done,
        "wrong_answers": wrong,
        "evictions": int(evictions),
        "resident_functions_max": max(resident_counts, default=0),
        "resident_functions_median": float(np.median(resident_counts)) if resident_counts else 0,
        "estimate_mib_max": round(max(estimate_samples, default=0) / 2**20, 1),
        "rss_mib_before_traffic": round(rss_before / 2**20, 1),
        "rss_mib_max": round(max(rss_samples, default=0) / 2**20, 1),
        "rss_growth_mib_max": round((max(rss_samples, default=0) - rss_before) / 2**20, 1),
        "rss_growth_within_budget": (max(rss_samples, default=0) - rss_before) <= budget,
        "invoke_resident": percentiles(resident_latency),
        "invoke_not_resident": percentiles(loaded_latency),
        "encoder": "table of real EfficientNet-Lite0 embeddings (the backbone does not run)",
    }
    write_result(RESULT, report)
    for key, value in report.items():
        print(f"{key}: {value}")
    return report


if __name__ == "__main__":
    main()

"""B13 (vector spaces): what moving a function's stored vectors into a tuned space costs.

A function of ``--samples`` labelled Fashion-MNIST test images (EfficientNet-Lite0, the service's
own ``add_sample``) gets a first trained head, then a tuned version (the shipping cut, last 3
blocks; its weights do not change the cost, so the tail is left untuned). Each round deploys the
tuned version (every stored vector embedded again by its tower: :func:`service.spaces.move_space`)
and rolls back to version 1 (embedded again by the backbone), interleaved with the baseline: the
same images, read from the blob store, embedded by the same encoder with no database work
(``embed_images_with``). Figures are medians over ``--rounds``: seconds per 1,000 stored vectors,
and the move's time over the baseline's (what the rewrite and its transaction add).

Usage (from the repository root)::

    python -m bench.space_move                 # 1,000 samples, 3 rounds
    python -m bench.space_move --samples 200 --rounds 1 --out /tmp/m.json

Writes ``bench/results/space_move.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/space_move.py``
    sys.path.insert(0, str(ROOT))

from bench.cpu_precision import machine  # noqa: E402
from bench.data import _FILES, CLASS_NAMES, DATA_DIR, read_idx  # noqa: E402
from bench.many_functions import png  # noqa: E402
from bench.results_file import write_result  # noqa: E402

RESULT = ROOT / "bench" / "results" / "space_move.json"


def measure(samples: int, rounds: int, precision: str) -> dict[str, Any]:
    from fastapi.testclient import TestClient
    from sqlmodel import select

    from api.app import create_app
    from embeddings.tuning import split_tower
    from learner.champion import DeployDecision
    from learner.finetune import TUNED_HEAD, TunedHead, TunedModel
    from service.deploys import deploy_version, record_version
    from service.samples import add_sample, embed_images_with
    from service.settings import Settings
    from service.training import train_function
    from store import Function, LabelChange, Sample, session_scope

    images = read_idx(DATA_DIR / _FILES["t10k"][0])[:samples]
    names = np.asarray(CLASS_NAMES)[read_idx(DATA_DIR / _FILES["t10k"][1])[:samples]]
    pngs = [png(image) for image in images]
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            data_dir=data_dir,
            backbone="efficientnet-lite0",
            retrain_interval=0,
            seed="0",
            admin_key="k",
            precision=precision,
        )
        with TestClient(create_app(settings)) as http:
            rt = http.app.state.runtime  # type: ignore[attr-defined]
            with session_scope(rt.engine) as session:
                function = Function(name="move", backbone="efficientnet-lite0")
                session.add(function)
            fn = function.id
            change = LabelChange(actors=("bench",), via="sample_api")
            for data, name in zip(pngs, names, strict=True):
                add_sample(rt, fn, data=data, label_name=str(name), external_id=None, change=change)
            train_function(rt, fn)
            tower = split_tower("efficientnet-lite0", 3)
            model = TunedModel(tower.tail, sorted(set(map(str, names))), 1280, 3).eval()
            held = DeployDecision(deploy=False, reason="bench: deployed by hand", tolerance=0.0)
            tuned = record_version(
                rt,
                fn,
                TunedHead("efficientnet-lite0", model),
                held,
                labels=[str(c) for c in model.classes_],
                label_counts={},
                head=TUNED_HEAD,
                own_space=True,
            )
            with session_scope(rt.engine) as session:
                blobs = list(session.exec(select(Sample.blob).where(Sample.function_id == fn)))
                function = session.get(Function, fn)
            times: dict[str, list[float]] = {"move_in": [], "move_out": [], "baseline": []}
            for _ in range(rounds):
                started = time.perf_counter()
                deploy_version(rt, fn, tuned.version, pin=False)
                times["move_in"].append(time.perf_counter() - started)
                with session_scope(rt.engine) as session:
                    moved = session.get(Function, fn)
                if moved is None or moved.vector_space != tuned.version:
                    raise RuntimeError("the deploy did not move the vectors to the tuned space")
                started = time.perf_counter()
                deploy_version(rt, fn, 1, pin=False)
                times["move_out"].append(time.perf_counter() - started)
                started = time.perf_counter()
                for start in range(0, len(blobs), 64):
                    chunk = [rt.blobs.get(blob) for blob in blobs[start : start + 64]]
                    embed_images_with(rt, function, chunk, None)
                times["baseline"].append(time.perf_counter() - started)
    per_1000 = {k: statistics.median(v) * 1000 / samples for k, v in times.items()}
    return {
        "machine": machine(),
        "samples": samples,
        "rounds": rounds,
        "precision": precision,
        "seconds": times,
        "seconds_per_1000": per_1000,
        "move_in_over_baseline": statistics.median(
            a / b for a, b in zip(times["move_in"], times["baseline"], strict=True)
        ),
        "move_out_over_baseline": statistics.median(
            a / b for a, b in zip(times["move_out"], times["baseline"], strict=True)
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    result = measure(args.samples, args.rounds, args.precision)
    write_result(args.out, result)
    per = result["seconds_per_1000"]
    print(
        f"moving {result['samples']} stored vectors ({args.precision}, median of "
        f"{args.rounds}): into the tuned space {per['move_in']:.1f} s per 1,000 "
        f"(x{result['move_in_over_baseline']:.2f} of embedding them alone), back "
        f"{per['move_out']:.1f} s per 1,000 (x{result['move_out_over_baseline']:.2f}); "
        f"embedding alone {per['baseline']:.1f} s per 1,000"
    )


if __name__ == "__main__":
    main()

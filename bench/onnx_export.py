"""B10: an exported model answers as the service does.

For each backbone (EfficientNet-Lite0 with its ImageNet weights; ViT-B-32 at seeded random init),
three heads are trained by the service's own training (``learner.train_head``: cross-validated
over one family's grid, temperature-scaled) on ``--train`` Fashion-MNIST training images: logistic
regression, the calibrated linear SVM and the cosine kNN; on EfficientNet-Lite0 also a tuned version
(its last blocks tuned for ``--tune-epochs`` on the same images, as the fine-tune job tunes). Each
is exported the way ``GET /v1/functions/{id}/model.onnx`` does it
(:func:`service.model_export.joined_model`, fp32), and the ``--test`` first test images go through
both paths:

* the service: the image decoded as the service decodes uploads, its own preprocessing, the
  backbone in fp32 (and, for the agreement column, in the precision ``auto`` picks here) and
  ``head.predict_proba``; a tuned version: the encoder's shared trunk, the tuned tail on its
  activations and ``predict_proba``;
* the export: the same PNG bytes through ``docs/examples/run_exported.py``'s ``pixels`` (Pillow
  only) into onnxruntime.

Reported per backbone and head: the share of images whose top label agrees, the largest and 99th
percentile absolute probability difference, and both paths' test accuracy.

Usage::

    python -m bench.onnx_export                      # 2,000 test images, both backbones
    python -m bench.onnx_export --test 200 --backbones efficientnet-lite0 --out /tmp/b10.json
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import io
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.data import _FILES, CLASS_NAMES, DATA_DIR, read_idx  # noqa: E402
from bench.results_file import write_result  # noqa: E402
from bench.serving import served_backbone  # noqa: E402

RESULT = ROOT / "bench" / "results" / "onnx_export.json"
SNIPPET = ROOT / "docs" / "examples" / "run_exported.py"
DEFAULT_BACKBONES = "efficientnet-lite0,clip:ViT-B-32/random-init"
FAMILIES = ("logistic_regression", "linear_svm", "knn")
TARGET_AGREEMENT = 0.995
TARGET_PROBABILITY_GAP = 1e-3
BATCH = 32


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def fashion(file_key: str, count: int) -> tuple[list[bytes], np.ndarray]:
    """The first ``count`` images of a Fashion-MNIST file as PNG bytes, and their class names."""
    images = read_idx(DATA_DIR / _FILES[file_key][0])[:count]
    labels = read_idx(DATA_DIR / _FILES[file_key][1])[:count]
    return [png(image) for image in images], np.asarray(CLASS_NAMES)[labels]


def preprocessed(backbone: Any, images: list[bytes]) -> Iterator[Any]:
    """The uploads decoded as the service decodes them and preprocessed by ``backbone``, as
    tensors of ``BATCH`` images."""
    import torch

    from embeddings import decode_image

    for start in range(0, len(images), BATCH):
        batch = [backbone.preprocess(decode_image(data)) for data in images[start : start + BATCH]]
        yield torch.stack(batch)


def service_vectors(backbone: Any, images: list[bytes]) -> np.ndarray:
    """What the service embeds for these uploads: its decoder, preprocessing and ``encode``."""
    return np.concatenate([backbone.encode(batch) for batch in preprocessed(backbone, images)])


@functools.cache
def snippet() -> ModuleType:
    """``docs/examples/run_exported.py``, the documented standalone snippet, as a module (the
    bench and the tests run the very file users copy)."""
    spec = importlib.util.spec_from_file_location("run_exported", SNIPPET)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def snippet_pixels(images: list[bytes], recipe: dict[str, Any]) -> np.ndarray:
    """The pixels the documented standalone snippet makes of these images."""
    return np.stack([snippet().pixels(Image.open(io.BytesIO(data)), recipe) for data in images])


def head_of(family: str, vectors: np.ndarray, labels: np.ndarray) -> Any:
    """The service's training restricted to one head family's grid."""
    from learner import train_head
    from learner.heads import DataShape, default_candidates

    counts = np.unique(labels, return_counts=True)[1]
    shape = DataShape(
        n_train=len(labels) * 4 // 5,
        min_class_count=int(counts.min()) * 4 // 5,
        n_classes=len(counts),
        n_features=vectors.shape[1],
    )
    candidates = [c for c in default_candidates(shape) if c.name == family]
    return train_head(vectors, labels, candidates=candidates).head


def compare(
    served: np.ndarray, exported: np.ndarray, truth: np.ndarray, classes: np.ndarray
) -> dict[str, Any]:
    gap = np.abs(served - exported).max(axis=1)
    return {
        "top_label_agreement": round(float(np.mean(served.argmax(1) == exported.argmax(1))), 5),
        "max_probability_gap": float(gap.max()),
        "p99_probability_gap": float(np.percentile(gap, 99)),
        "accuracy_service": round(float(np.mean(classes[served.argmax(1)] == truth)), 4),
        "accuracy_export": round(float(np.mean(classes[exported.argmax(1)] == truth)), 4),
    }


def run_session(session: Any, pixels: np.ndarray) -> np.ndarray:
    """An exported model's probabilities for ``pixels``, ``BATCH`` at a time."""
    return np.concatenate(
        [
            session.run(["probabilities"], {"pixels": pixels[i : i + BATCH]})[0]
            for i in range(0, len(pixels), BATCH)
        ]
    )


def tuned_head(
    spec: str,
    backbone: Any,
    images: list[bytes],
    labels: np.ndarray,
    args: argparse.Namespace,
) -> Any:
    """A tuned version as the fine-tune job makes one (:class:`learner.finetune.TunedHead`),
    tuned briefly on the training images (the parity does not depend on how well it learnt)."""
    from embeddings.tuning import split_tower, trunk_activations
    from learner.finetune import TuneConfig, TunedHead, fine_tune

    config = TuneConfig(views=0, max_epochs=args.tune_epochs)
    split = split_tower(spec, config.tuned_blocks)
    activations = trunk_activations(split.trunk, preprocessed(backbone, images))
    tuned = fine_tune(split.tail, activations, [], list(labels), config)
    return TunedHead(spec, tuned.model)


def tuned_answers(spec: str, backbone: Any, head: Any, images: list[bytes]) -> np.ndarray:
    """What the service answers for a tuned version: the encoder's shared trunk, the version's
    tail on its activations (``encode_tuned``), then ``predict_proba``."""

    from embeddings.tuning import SharedTrunk

    rows, trunk = [], None
    for inputs in preprocessed(backbone, images):
        if trunk is None:
            trunk = SharedTrunk(spec, head.tuned_blocks, inputs)
        rows.append(head.predict_proba(head.run(trunk.activations(inputs))))
    return np.concatenate(rows)


def run_backbone(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    import onnxruntime
    import torch

    from embeddings import load_backbone
    from embeddings.onnx_graph import pixel_graph
    from embeddings.tower_options import TowerOptions
    from embeddings.tuning import TUNABLE_SPECS, tuned_network
    from service.model_export import joined_model

    torch.set_num_threads(args.threads)
    served, name = served_backbone(spec)
    train_images, train_labels = fashion("train", args.train)
    test_images, test_labels = fashion("t10k", args.test)
    started = time.perf_counter()
    backbone = load_backbone(served, device="cpu")  # fp32, the library default
    train_vectors = service_vectors(backbone, train_images)
    test_vectors = service_vectors(backbone, test_images)
    embed_s = time.perf_counter() - started
    auto = load_backbone(served, device="cpu", tower=TowerOptions(precision="auto", probe_batch=8))
    auto_vectors = service_vectors(auto, test_images)
    started = time.perf_counter()
    tower = pixel_graph(backbone)
    export_s = time.perf_counter() - started
    pixels = snippet_pixels(test_images, tower[1].describe())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    heads: dict[str, Any] = {}
    for family in FAMILIES:
        head = head_of(family, train_vectors, train_labels)
        model = joined_model(tower, head, backbone.dim, {"winnow.labels": "[]"})
        session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        started = time.perf_counter()
        exported = run_session(session, pixels)
        onnx_s = time.perf_counter() - started
        classes = np.asarray(head.classes_)
        served_proba = head.predict_proba(test_vectors)
        result = compare(served_proba, exported, test_labels, classes)
        auto_proba = head.predict_proba(auto_vectors)
        result["top_label_agreement_with_auto_precision"] = round(
            float(np.mean(auto_proba.argmax(1) == exported.argmax(1))), 5
        )
        result["head"] = type(getattr(head, "estimator", head)).__name__
        result["onnx_images_per_s"] = round(len(pixels) / onnx_s, 1)
        result["model_mb"] = round(len(model) / 2**20, 1)
        heads[family] = result
        print(f"{name} {family}: {result}", flush=True)
    if served in TUNABLE_SPECS:
        tuned = tuned_head(served, backbone, train_images, train_labels, args)
        started = time.perf_counter()
        model = joined_model(
            pixel_graph(backbone, tuned_network(served, tuned.model.tail, tuned.tuned_blocks)),
            tuned,
            backbone.dim,
            {"winnow.labels": "[]"},
        )
        tuned_export_s = time.perf_counter() - started
        session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        exported = run_session(session, pixels)
        result = compare(
            tuned_answers(served, backbone, tuned, test_images),
            exported,
            test_labels,
            np.asarray(tuned.classes_),
        )
        result["head"] = "TunedHead"
        result["tuned_blocks"] = tuned.tuned_blocks
        result["export_seconds"] = round(tuned_export_s, 1)
        result["model_mb"] = round(len(model) / 2**20, 1)
        heads["finetuned"] = result
        print(f"{name} finetuned: {result}", flush=True)
    return {
        "backbone": name,
        "auto_precision": auto.precision.precision,  # type: ignore[attr-defined]
        "embed_seconds": round(embed_s, 1),
        "export_seconds": round(export_s, 1),
        "heads": heads,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default=DEFAULT_BACKBONES)
    parser.add_argument("--train", type=int, default=1000, help="training images per head")
    parser.add_argument("--test", type=int, default=2000, help="test images compared")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--tune-epochs", type=int, default=3, help="epochs of the tuned version's brief tuning"
    )
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    backbones = [run_backbone(spec, args) for spec in args.backbones.split(",")]
    results = [head for backbone in backbones for head in backbone["heads"].values()]
    report = {
        "bench": "onnx_export",
        "config": {
            "train": args.train,
            "test": args.test,
            "threads": args.threads,
            "tune_epochs": args.tune_epochs,
        },
        "backbones": backbones,
        "target_agreement": TARGET_AGREEMENT,
        "target_probability_gap": TARGET_PROBABILITY_GAP,
        "pass": all(
            r["top_label_agreement"] >= TARGET_AGREEMENT
            and r["max_probability_gap"] <= TARGET_PROBABILITY_GAP
            for r in results
        ),
    }
    write_result(args.out, report)
    print(f"wrote {args.out}: pass={report['pass']}")


if __name__ == "__main__":
    main()

"""Issue 30: the ``imagenet`` preset against EfficientNet-Lite0's own classifier, and its latency.

Parity: for each real photo available offline (scikit-image's bundled photos, the cat
``chelsea`` among them, when scikit-image is installed; scikit-learn's ``china`` and ``flower``),
the top 5 labels a preset function answers over HTTP (the service: decode, the encoder's unit
vectors, the preset head) against the top 5 of the original model run directly: the same pixels
through timm's ``tf_efficientnet_lite0`` with its packaged 1,000-way classifier, fp32, on the
unnormalised features. The service runs once with the tower in fp32 and once in the precision
``auto`` picks on this machine (what a default install serves).

Latency: one service (fp32 tower), three functions on the same backbone: the whole preset (1,000
labels, so 1,000 label confidences per answer), a preset restricted to 4 labels, and a function
trained on labelled crops of the photos (one label per photo). ``--repeats`` rounds each invoke
the three functions with the same photo (PNG data URI) through the ASGI app in process (FastAPI's
TestClient: the whole HTTP stack but the socket), once as a plain invoke (capture decides, and may
write a review item) and once with ``?capture=false`` (the serving path alone), the six in a
shuffled order (the serving worker's refits after one invoke slow whichever comes next);
the medians and their ratios to the trained function's come from that one run.

Usage (from the repository root)::

    python -m bench.preset [--repeats 100] [--out bench/results/preset.json]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi.testclient import TestClient
from PIL import Image

from api.app import create_app
from bench.results_file import write_result
from embeddings import EfficientNetLite0Backbone, build_efficientnet_lite0
from learner import IMAGENET_LABELS
from service.settings import Settings

RESULT = Path("bench/results/preset.json")
ADMIN_KEY = "bench-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
CAT_CLASSES = frozenset(IMAGENET_LABELS[281:286])  # tabby, tiger, Persian, Siamese, Egyptian Mau
SUBSET = ["tabby cat", "tiger cat", "Egyptian Mau", "goldfish"]


def bundled_photos() -> dict[str, np.ndarray]:
    """Real photos that ship with installed packages: scikit-image's (if installed) and
    scikit-learn's, as ``(H, W, 3)`` uint8 RGB arrays by name."""
    from sklearn.datasets import load_sample_images

    photos: dict[str, np.ndarray] = {}
    try:
        import skimage.data
    except ImportError:
        pass
    else:
        for name in ("chelsea", "coffee", "astronaut", "rocket"):
            photos[name] = np.asarray(getattr(skimage.data, name)())
    china, flower = load_sample_images().images
    photos["china"], photos["flower"] = np.asarray(china), np.asarray(flower)
    return photos


def png(pixels: np.ndarray) -> bytes:
    """Lossless bytes: the service decodes exactly the pixels the direct run sees."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


class DirectClassifier:
    """EfficientNet-Lite0 end to end as shipped: winnow's preprocessing (resize, crop, scale),
    then timm's network with its 1,000-way classifier, fp32, eager."""

    def __init__(self) -> None:
        self._preprocess = EfficientNetLite0Backbone(torch.device("cpu")).preprocess
        self._model = build_efficientnet_lite0(with_classifier=True)

    def top(self, pixels: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable ImageNet labels of one photo, with their probabilities."""
        batch = self._preprocess(Image.fromarray(pixels).convert("RGB"))[None]
        with torch.inference_mode():
            proba = torch.softmax(self._model(batch)[0].double(), dim=0).numpy()
        order = np.argsort(-proba, kind="stable")[:k]
        return [(IMAGENET_LABELS[i], float(proba[i])) for i in order]


def service_top(answer: dict[str, Any], k: int = 5) -> list[tuple[str, float]]:
    return [(c["labelName"], c["confidence"]) for c in answer["labelConfidences"][:k]]


def parity(
    photos: dict[str, np.ndarray], direct: DirectClassifier, precision: str
) -> dict[str, Any]:
    """Top 5 of a preset function against the direct run, per photo."""
    with tempfile.TemporaryDirectory() as data_dir, _client(data_dir, precision) as client:
        fid = _create(client, {"name": "imagenet", "preset": "imagenet"})
        rows = {}
        for name, pixels in photos.items():
            answer = _invoke(client, fid, png(pixels))
            served, original = service_top(answer), direct.top(pixels)
            served_names, original_names = [n for n, _ in served], [n for n, _ in original]
            rows[name] = {
                "preset_top5": served,
                "direct_top5": original,
                "overlap": len(set(served_names) & set(original_names)),
                "same_order": served_names == original_names,
                # the head rescales unit vectors to a typical length, not the photo's own
                "top1_probability": {"preset": served[0][1], "direct": original[0][1]},
            }
        chosen = Path(data_dir, "precision.json")
        return {
            "precision": precision,
            "precision_file": chosen.read_text() if chosen.exists() else None,
            "photos": rows,
            "all_top5_identical": all(r["same_order"] for r in rows.values()),
        }


def latency(photos: dict[str, np.ndarray], repeats: int) -> dict[str, Any]:
    """Median invoke latency and answer size of the whole preset, a 4-label preset and a trained
    function, with capture, without, and keeping 5 labels' confidences (``labelCount``)."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as data_dir, _client(data_dir, "fp32") as client:
        functions = {
            "preset_1000": _create(client, {"name": "all", "preset": "imagenet"}),
            "preset_4": _create(client, {"name": "four", "preset": "imagenet", "labels": SUBSET}),
            "trained": _create(client, {"name": "trained", "labels": sorted(photos)}),
        }
        for name, pixels in photos.items():  # 8 random crops (some flipped) per photo
            for _ in range(8):
                annotation = {"labelName": name}
                body = {"data": data_uri(png(_crop(pixels, rng))), "annotation": annotation}
                added = client.post(f"/v1/functions/{functions['trained']}/samples", json=body)
                added.raise_for_status()
        trained = client.post(f"/v1/functions/{functions['trained']}/train").json()
        assert trained["status"] == "deployed", trained
        images = [png(pixels) for pixels in photos.values()]
        for fid in functions.values():  # first invokes build each snapshot: not timed
            _invoke(client, fid, images[0])
        # label_count_5: the answer keeps its 5 most likely labels' confidences (capture on)
        modes = {"capture": "", "no_capture": "?capture=false", "label_count_5": "?labelCount=5"}
        times: dict[str, list[float]] = {f"{n}/{m}": [] for n in functions for m in modes}
        sizes: dict[str, int] = {}
        captured = dict.fromkeys(functions, 0)
        order = [(name, mode) for name in functions for mode in modes]
        for round_ in range(repeats):
            image = images[round_ % len(images)]
            # shuffled per round: the worker's refits after one invoke slow whichever comes next
            for pick in rng.permutation(len(order)):
                name, mode = order[pick]
                fid, query = functions[name], modes[mode]
                start = time.perf_counter()
                response = client.post(
                    f"/v1/functions/{fid}/invoke{query}", json={"data": data_uri(image)}
                )
                times[f"{name}/{mode}"].append(time.perf_counter() - start)
                response.raise_for_status()
                sizes[f"{name}/{mode}"] = len(response.content)
                capture = response.json()["capture"]
                captured[name] += bool(capture and capture.get("captured"))
        heads = _head_only_us(client, functions, images[0])
    medians = {name: statistics.median(t) * 1000 for name, t in times.items()}
    return {
        "repeats": repeats,
        "transport": "FastAPI TestClient (ASGI in process), JSON data URI of a PNG",
        "trained_head": trained["head"],
        "median_ms": {k: round(v, 2) for k, v in medians.items()},
        "p90_ms": {k: round(float(np.percentile(t, 90)) * 1000, 2) for k, t in times.items()},
        "ratio_to_trained": {
            key: round(value / medians[f"trained/{key.split('/')[1]}"], 3)
            for key, value in medians.items()
            if not key.startswith("trained/")
        },
        "head_predict_proba_median_us": heads,
        "captured": captured,
        "response_bytes": sizes,
    }


def _head_only_us(client: TestClient, functions: dict[str, str], image: bytes) -> dict[str, float]:
    """Median microseconds of each serving head's ``predict_proba`` on one vector: the part of
    an invoke that depends on the head (the rest is the same encoder, capture and HTTP)."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    vector = runtime.encoders.get("efficientnet-lite0").encode(
        [Image.open(io.BytesIO(image)).convert("RGB")]
    )
    result = {}
    for name, function_id in functions.items():
        head = runtime.heads.get(function_id).head
        spent = []
        for _ in range(200):
            start = time.perf_counter()
            head.predict_proba(vector)
            spent.append(time.perf_counter() - start)
        result[name] = round(statistics.median(spent) * 1e6, 1)
    return result


def _crop(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width = pixels.shape[:2]
    size = int(min(height, width) * rng.uniform(0.6, 0.9))
    top, left = rng.integers(0, height - size + 1), rng.integers(0, width - size + 1)
    crop = pixels[top : top + size, left : left + size]
    return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)


def _client(data_dir: str, precision: str) -> TestClient:
    settings = Settings(
        data_dir=Path(data_dir),
        backbone="efficientnet-lite0",
        retrain_interval=0,
        seed="0",
        admin_key=ADMIN_KEY,
        precision=precision,
    )
    return TestClient(create_app(settings), headers=AUTH)


def _create(client: TestClient, body: dict[str, Any]) -> str:
    created = client.post("/v1/functions", json=body)
    created.raise_for_status()
    return str(created.json()["id"])


def _invoke(client: TestClient, fid: str, image: bytes) -> dict[str, Any]:
    answer = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(image)})
    answer.raise_for_status()
    return answer.json()  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    photos = bundled_photos()
    direct = DirectClassifier()
    report: dict[str, Any] = {
        "photos": sorted(photos),
        "parity": [parity(photos, direct, precision) for precision in ("fp32", "auto")],
    }
    if "chelsea" in photos:
        top1 = report["parity"][0]["photos"]["chelsea"]["preset_top5"][0][0]
        report["cat_photo_top1"] = {"label": top1, "is_cat_class": top1 in CAT_CLASSES}
    report["latency"] = latency(photos, args.repeats)
    write_result(args.out, report)
    for run in report["parity"]:
        print(f"precision {run['precision']}: all top-5 identical {run['all_top5_identical']}")
        for name, row in run["photos"].items():
            print(
                f"  {name}: overlap {row['overlap']}/5, same order {row['same_order']}, "
                f"top-1 {row['preset_top5'][0][0]!r} (direct {row['direct_top5'][0][0]!r})"
            )
    print("cat photo:", report.get("cat_photo_top1"))
    print("latency:", json.dumps(report["latency"], indent=1))


if __name__ == "__main__":
    main()

"""End to end over HTTP with real images and the offline pretrained backbone.

scikit-learn's bundled handwritten digits are rendered to PNG, uploaded through the Python client,
a head is trained, and held-out digits are invoked: accuracy must be far above chance (10%).
"""

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sklearn.datasets import load_digits

from api.app import create_app
from api.client import Client
from api.settings import Settings

pytestmark = pytest.mark.slow


def _digit_png(pixels: np.ndarray) -> bytes:
    image = Image.fromarray((255 - pixels * 16).clip(0, 255).astype(np.uint8)).resize(
        (64, 64), Image.BICUBIC
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_digits_end_to_end_with_offline_backbone(tmp_path) -> None:
    digits = load_digits()
    rng = np.random.default_rng(0)
    train_idx, test_idx = [], []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(digits.target == digit))
        train_idx += list(idx[:12])
        test_idx += list(idx[12:18])

    settings = Settings(data_dir=tmp_path, backbone="efficientnet-lite0", retrain_interval=0)
    with TestClient(create_app(settings)) as http:
        client = Client(http=http)
        fn = client.create_function("Digits", labels=[str(d) for d in range(10)])
        assert fn.data["backbone"] == "efficientnet-lite0"
        fn.create_samples(
            [(_digit_png(digits.images[i]), str(digits.target[i])) for i in train_idx],
            progress=False,
        )
        version = fn.train()
        assert version["sampleCount"] == 120

        correct = sum(
            fn(_digit_png(digits.images[i])).label_name == str(digits.target[i]) for i in test_idx
        )
        accuracy = correct / len(test_idx)
        cv = version["metrics"]["accuracy"]
        print(f"held-out accuracy {accuracy:.3f} on {len(test_idx)} digits; CV {cv:.3f}")
        assert accuracy >= 0.6, accuracy

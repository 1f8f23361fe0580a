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
from winnow_client import Client

from api.app import create_app
from service.settings import Settings
from tests.api.live import wait_until

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

    settings = Settings(
        data_dir=tmp_path, backbone="efficientnet-lite0", retrain_interval=0, admin_key="k"
    )
    with TestClient(create_app(settings)) as http:
        client = Client(http=http, api_key="k")
        fn = client.create_function("Digits", labels=[str(d) for d in range(10)])
        assert fn.backbone == "efficientnet-lite0"
        client.upload_samples(
            fn.id,
            [(_digit_png(digits.images[i]), str(digits.target[i])) for i in train_idx],
            progress=False,
        )
        version = client.train(fn.id)
        assert version.sample_count == 120

        correct = sum(
            client.invoke(fn.id, _digit_png(digits.images[i])).label_name == str(digits.target[i])
            for i in test_idx
        )
        accuracy = correct / len(test_idx)
        cv = version.metrics["accuracy"]
        print(f"held-out accuracy {accuracy:.3f} on {len(test_idx)} digits; CV {cv:.3f}")
        assert accuracy >= 0.6, accuracy


def test_capture_review_and_scheduled_retrain_end_to_end(tmp_path) -> None:
    """invoke -> capture -> annotate via review -> the scheduler retrains within its interval ->
    invoke answers with the new version, and held-out accuracy does not drop."""
    digits = load_digits()
    rng = np.random.default_rng(1)
    seed_idx, stream_idx, test_idx = [], [], []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(digits.target == digit))
        seed_idx += list(idx[:3])
        stream_idx += list(idx[3:9])
        test_idx += list(idx[9:13])
    images = {i: _digit_png(digits.images[i]) for i in seed_idx + stream_idx + test_idx}
    truth = {i: str(digits.target[i]) for i in images}

    settings = Settings(
        data_dir=tmp_path,
        backbone="efficientnet-lite0",
        retrain_interval=1.0,
        retrain_min_annotations=10,
        admin_key="test-admin-key",
        seed="0",
    )
    with TestClient(
        create_app(settings), headers={"Authorization": "Bearer test-admin-key"}
    ) as http:
        client = Client(http=http)
        fn = client.create_function("Digits", labels=[str(d) for d in range(10)])
        client.upload_samples(fn.id, [(images[i], truth[i]) for i in seed_idx], progress=False)
        # 30 annotations >= 10: the scheduler trains the first model by itself.
        wait_until(lambda: http.get(f"/v1/functions/{fn.id}").json()["deployedVersion"], what="v1")

        def held_out_accuracy() -> tuple[float, set[int]]:
            answers = [client.invoke(fn.id, images[i], capture=False) for i in test_idx]
            correct = sum(a.label_name == truth[i] for a, i in zip(answers, test_idx, strict=True))
            return correct / len(test_idx), {a.model_version for a in answers}

        before, versions_before = held_out_accuracy()
        http.put(
            f"/v1/functions/{fn.id}/capture-policy", json={"targetRate": 0.5, "randomRate": 0.1}
        )
        captured = 0
        for i in stream_idx:
            capture = client.invoke(fn.id, images[i]).capture
            assert capture is not None
            if capture.captured:
                captured += 1
                assert capture.item_id is not None
                item = client.annotate(fn.id, capture.item_id, truth[i])
                assert item.status == "annotated"
        assert captured >= 10, captured
        old = max(versions_before)
        wait_until(
            lambda: http.get(f"/v1/functions/{fn.id}").json()["deployedVersion"] > old,
            timeout=120,
            what=lambda: f"scheduled retrain: {http.get(f'/v1/functions/{fn.id}/training').json()}",
        )
        after, versions_after = held_out_accuracy()
        print(
            f"captured {captured}/{len(stream_idx)}; held-out {before:.3f} (v{old}) -> {after:.3f} {versions_after}"
        )
        assert min(versions_after) > old
        assert after >= before - 0.025  # one image of 40

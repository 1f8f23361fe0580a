"""The ``imagenet`` preset on the real EfficientNet-Lite0 weights and real photos: its top 5 is the
original model's own, run directly (timm's network with its packaged classifier, fp32, on the
unnormalised features), and the cat photo's top label is a cat class."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from bench.preset import CAT_CLASSES, DirectClassifier, bundled_photos, png, service_top
from service.settings import Settings
from tests.conftest import ADMIN_KEY, AUTH, data_uri

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return bundled_photos()


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    """A service on EfficientNet-Lite0 (fp32 tower) and a function of the whole preset."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("preset") / "data",
        backbone="efficientnet-lite0",
        retrain_interval=0,
        seed="0",
        admin_key=ADMIN_KEY,
        precision="fp32",
    )
    with TestClient(create_app(settings), headers=AUTH) as client:
        created = client.post("/v1/functions", json={"name": "imagenet", "preset": "imagenet"})
        assert created.status_code == 201, created.text
        yield client, created.json()["id"]


def _answer(preset: tuple[TestClient, str], pixels: np.ndarray) -> dict:
    client, fid = preset
    answer = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(png(pixels))})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_top5_is_the_original_classifiers(
    preset: tuple[TestClient, str], photos: dict[str, np.ndarray]
) -> None:
    direct = DirectClassifier()
    assert {"china", "flower"} <= set(photos)
    for name, pixels in photos.items():
        served = [label for label, _ in service_top(_answer(preset, pixels))]
        original = [label for label, _ in direct.top(pixels)]
        assert served == original, name


def test_the_cat_photo_is_a_cat(preset: tuple[TestClient, str]) -> None:
    data = pytest.importorskip("skimage.data", reason="scikit-image holds the cat photo")
    answer = _answer(preset, np.asarray(data.chelsea()))
    assert answer["modelVersion"] == 0 and answer["labelName"] in CAT_CLASSES, answer["labelName"]


def test_a_cat_subset_renormalises_the_real_classifier(preset: tuple[TestClient, str]) -> None:
    data = pytest.importorskip("skimage.data", reason="scikit-image holds the cat photo")
    client, whole = preset
    cats = sorted(CAT_CLASSES)
    subset = client.post(
        "/v1/functions", json={"name": "cats", "preset": "imagenet", "labels": cats}
    ).json()["id"]
    pixels = np.asarray(data.chelsea())
    everything = {
        c["labelName"]: c["confidence"] for c in _answer(preset, pixels)["labelConfidences"]
    }
    got = {
        c["labelName"]: c["confidence"]
        for c in _answer((client, subset), pixels)["labelConfidences"]
    }
    total = sum(everything[name] for name in cats)
    assert got == pytest.approx({name: everything[name] / total for name in cats}, abs=1e-5)

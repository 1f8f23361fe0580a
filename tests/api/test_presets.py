"""Functions created from the ``imagenet`` preset: version 0 is a pretrained classifier.

On the tiny CLIP (random weights: its answers are arbitrary but deterministic) the preset is
zero-shot over the ImageNet class names; what is checked is the machinery: labels, subsets
renormalised, the 422s, the guard a trained head must pass, rollback. The real EfficientNet-Lite0
weights are used where the answers themselves matter (tests/api/test_presets_photos.py).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from learner import IMAGENET_LABELS
from service.errors import Unprocessable
from service.presets import build_preset_head
from service.settings import Settings
from tests.conftest import AUTH, BLUE, GREEN, RED, data_uri, png_bytes

SUBSET = ["goldfish", "tabby cat", "missile (2)", "Egyptian Mau"]


def _create(client: TestClient, **body: Any) -> dict[str, Any]:
    created = client.post("/v1/functions", json={"name": "preset", "preset": "imagenet"} | body)
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


def _invoke(client: TestClient, fid: str, image: bytes) -> dict[str, Any]:
    answer = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(image)})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _models(client: TestClient, fid: str) -> dict[int, dict[str, Any]]:
    return {m["version"]: m for m in client.get(f"/v1/functions/{fid}/models").json()["data"]}


def test_the_whole_preset_serves_imagenet_labels_before_any_sample(client: TestClient) -> None:
    function = _create(client)
    fid = function["id"]
    assert function["deployedVersion"] == 0 and function["labelCount"] == 1000
    (version_0,) = _models(client, fid).values()
    assert version_0["kind"] == "preset" and version_0["head"] == "preset"
    assert version_0["params"] | {"source": "zero_shot", "subset": False} == version_0["params"]
    assert version_0["params"]["preset"] == "imagenet"
    assert version_0["labels"] == list(IMAGENET_LABELS)

    body = _invoke(client, fid, png_bytes(RED))
    assert body["modelVersion"] == 0 and body["labelName"] in IMAGENET_LABELS
    assert body["labelId"] and 0 < body["confidence"] <= 1
    confidences = body["labelConfidences"]
    assert len(confidences) == 1000 and abs(sum(c["confidence"] for c in confidences) - 1) < 1e-6
    labels = client.get(f"/v1/functions/{fid}/labels").json()
    assert labels["count"] == 1000
    exported = client.get(f"/v1/functions/{fid}/model.onnx")  # like any head
    assert exported.status_code == 200 and exported.content, exported.text


def test_a_subset_is_the_whole_preset_renormalised(client: TestClient) -> None:
    whole = _create(client)["id"]
    subset = _create(client, labels=SUBSET)
    assert subset["labelCount"] == len(SUBSET)
    assert _models(client, subset["id"])[0]["params"]["subset"] is True
    for colour in (RED, BLUE, GREEN):
        image = png_bytes(colour)
        everything = {
            c["labelName"]: c["confidence"]
            for c in _invoke(client, whole, image)["labelConfidences"]
        }
        answer = _invoke(client, subset["id"], image)
        got = {c["labelName"]: c["confidence"] for c in answer["labelConfidences"]}
        total = sum(everything[name] for name in SUBSET)
        assert set(got) == set(SUBSET)
        for name in SUBSET:
            assert got[name] == pytest.approx(everything[name] / total, abs=1e-5)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"preset": "coco"}, "unknown preset 'coco'; known presets: imagenet"),
        ({"labels": ["tabby cat", "unicorn", "tabby"]}, "no class named 'unicorn', 'tabby'"),
        ({"labels": ["tabby cat"]}, "name at least 2"),
        ({"labels": ["tabby cat", "tabby cat"]}, "label names must be unique"),
    ],
)
def test_refusals(client: TestClient, body: dict[str, Any], message: str) -> None:
    refused = client.post("/v1/functions", json={"name": "p", "preset": "imagenet"} | body)
    assert refused.status_code == 422 and message in refused.json()["message"], refused.text
    assert client.get("/v1/functions").json()["count"] == 0  # nothing half-made


def test_a_backbone_without_classifier_or_text_tower_is_refused() -> None:
    no_text = SimpleNamespace(has_text_tower=False)
    rt: Any = SimpleNamespace(encoders=SimpleNamespace(get=lambda spec: no_text))
    with pytest.raises(Unprocessable, match="neither its own ImageNet classifier nor a text tower"):
        build_preset_head(rt, "clip:some-image-only-model", "imagenet", None)


def _label_samples(client: TestClient, fid: str, labelled: list[tuple[bytes, str]]) -> None:
    for image, name in labelled:
        body = {"data": data_uri(image), "annotation": {"labelName": name}}
        added = client.post(f"/v1/functions/{fid}/samples", json=body)
        assert added.status_code == 201, added.text


def test_a_trained_head_replaces_the_preset_only_by_beating_it_and_rollback_works(
    client: TestClient, settings: Settings
) -> None:
    fid = _create(client, labels=["goldfish", "tabby cat"])["id"]
    # red gets the label version 0 does not give it: version 0 is wrong on every red sample,
    # while a trained head separates red from blue
    said = _invoke(client, fid, png_bytes(RED))["labelName"]
    other = "tabby cat" if said == "goldfish" else "goldfish"
    _label_samples(
        client,
        fid,
        [(png_bytes(RED, seed=i), other) for i in range(6)]
        + [(png_bytes(BLUE, seed=i), said) for i in range(6)],
    )
    trained = client.post(f"/v1/functions/{fid}/train").json()
    assert trained["status"] == "deployed" and trained["parentVersion"] == 0, trained
    assert "beats the preset head (version 0)" in trained["decision"]["reason"]
    assert _invoke(client, fid, png_bytes(RED, seed=50))["modelVersion"] == 1

    # rollback to version 0 as to any version, even with its artifact lost (rebuilt from its row)
    (Path(settings.data_dir) / "models" / fid / "v0.joblib").unlink()
    rolled = client.post(f"/v1/functions/{fid}/models/0/deploy")
    assert rolled.status_code == 200 and rolled.json()["kind"] == "preset", rolled.text
    back = _invoke(client, fid, png_bytes(RED))
    assert back["modelVersion"] == 0 and back["labelName"] == said
    assert {c["labelName"] for c in back["labelConfidences"]} == {"goldfish", "tabby cat"}


def test_a_trained_head_that_does_not_beat_the_preset_is_rejected(client: TestClient) -> None:
    fid = _create(client, labels=SUBSET)["id"]
    # every sample labelled as version 0 answers it: it is right on all, a challenger can only tie
    rng = np.random.default_rng(0)
    images = [png_bytes(tuple(int(v) for v in rng.integers(0, 256, 3))) for _ in range(16)]  # type: ignore[arg-type]
    labelled = [(image, _invoke(client, fid, image)["labelName"]) for image in images]
    assert len({name for _, name in labelled}) >= 2
    _label_samples(client, fid, labelled)
    trained = client.post(f"/v1/functions/{fid}/train").json()
    assert trained["status"] == "rejected", trained
    assert "does not beat the preset head" in trained["decision"]["reason"]
    assert client.get(f"/v1/functions/{fid}").json()["deployedVersion"] == 0


def test_version_0_stays_the_preset_across_a_restart_and_label_writes(settings: Settings) -> None:
    """Zero-shot upkeep (label writes, serving a function not yet resident) never rebuilds a
    preset's version 0 from the labels, though the tiny CLIP has a text tower."""
    with TestClient(create_app(settings), headers=AUTH) as client:
        fid = _create(client, labels=SUBSET)["id"]
        before = _invoke(client, fid, png_bytes(RED))
        version_0 = _models(client, fid)[0]
    with TestClient(create_app(settings), headers=AUTH) as client:  # nothing resident
        created = client.post(f"/v1/functions/{fid}/labels", json={"name": "my cat"})
        assert created.status_code == 201, created.text
        after = _invoke(client, fid, png_bytes(RED))
        assert after["modelVersion"] == 0
        assert after["labelConfidences"] == before["labelConfidences"]  # no "my cat"
        assert _models(client, fid)[0] == version_0

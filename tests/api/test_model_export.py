"""``GET /v1/functions/{id}/model.onnx``: the exported graph answers as the service does, run by
onnxruntime through the documented standalone snippet (docs/examples/run_exported.py)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
from fastapi.testclient import TestClient

from bench.onnx_export import snippet_pixels
from tests.conftest import BLUE, RED, add_colour_samples, data_uri, png_bytes


def exported_answers(model: bytes, images: list[bytes]) -> tuple[list[str], np.ndarray, dict]:
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    batch = snippet_pixels(images, json.loads(meta["winnow.preprocess"]))
    probabilities = session.run(["probabilities"], {"pixels": batch})[0]
    return json.loads(meta["winnow.labels"]), probabilities, meta


def served_answers(client: TestClient, fid: str, images: list[bytes]) -> list[dict[str, float]]:
    answers = []
    for image in images:
        body = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(image)}).json()
        answers.append({c["labelName"]: c["confidence"] for c in body["labelConfidences"]})
    return answers


@pytest.mark.slow
def test_exported_versions_answer_as_the_service(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "colour / v2"}).json()["id"]
    add_colour_samples(client, fid)
    assert client.post(f"/v1/functions/{fid}/train").status_code == 200
    images = [
        png_bytes(colour, seed=50 + i, size=40 + 7 * i) for i in range(3) for colour in (RED, BLUE)
    ]

    exported = client.get(f"/v1/functions/{fid}/model.onnx")  # the deployed version, 1
    assert exported.status_code == 200, exported.text
    assert 'filename="colour_v2-v1.onnx"' in exported.headers["content-disposition"]
    labels, probabilities, meta = exported_answers(exported.content, images)
    assert meta["winnow.model_version"] == "1" and meta["winnow.backbone"] == "tiny-clip"
    assert json.loads(meta["winnow.function"]) == {"id": fid, "name": "colour / v2"}
    for row, served in zip(probabilities, served_answers(client, fid, images), strict=True):
        assert sorted(labels) == sorted(served)
        for label, probability in zip(labels, row, strict=True):
            assert abs(probability - served[label]) < 1e-3

    # version 0, the zero-shot head from the label names, by number
    zero = client.get(f"/v1/functions/{fid}/model.onnx", params={"version": 0})
    assert zero.status_code == 200, zero.text
    labels, probabilities, meta = exported_answers(zero.content, images)
    assert meta["winnow.model_version"] == "0"
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_export_refuses_what_it_cannot_export(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "empty"}).json()["id"]
    nothing = client.get(f"/v1/functions/{fid}/model.onnx")
    assert nothing.status_code == 409 and "no deployed model" in nothing.json()["message"]
    missing = client.get(f"/v1/functions/{fid}/model.onnx", params={"version": 7})
    assert missing.status_code == 404
    assert client.get("/v1/functions/function_nope/model.onnx").status_code == 404
    assert client.get(f"/v1/functions/{fid}/model.onnx", params={"version": -1}).status_code == 422
    anonymous = client.get(f"/v1/functions/{fid}/model.onnx", headers={"Authorization": ""})
    assert anonymous.status_code == 401

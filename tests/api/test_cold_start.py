"""Invoke before any model: 200 with no label, cold-start capture, and a first model trained from
the review queue alone; capture rules over HTTP."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from service.serving import settle
from service.settings import Settings
from tests.api.live import wait_until
from tests.conftest import AUTH, data_uri, png_bytes

COLOURS = {"red": (200, 40, 40), "blue": (40, 40, 200), "green": (40, 190, 40)}
# shades of one colour embed at 0.96-0.999 cosine on the tiny backbone: not duplicates here
POLICY = {"duplicateSimilarity": 0.9999, "randomRate": 0.0}


def shade(name: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    colour = tuple(int(np.clip(c + rng.integers(-50, 50), 0, 255)) for c in COLOURS[name])
    return png_bytes(colour, seed=seed)  # type: ignore[arg-type]


def traffic(count: int, seed: int = 0) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    names = rng.choice(sorted(COLOURS), count)
    return [(str(name), shade(str(name), seed * 10_000 + i)) for i, name in enumerate(names)]


def function_without_labels(client: TestClient) -> str:
    fid = client.post("/v1/functions", json={"name": "colours"}).json()["id"]
    assert client.put(f"/v1/functions/{fid}/capture-policy", json=POLICY).status_code == 200
    return str(fid)


def invoke_all(
    client: TestClient, fid: str, images: list[tuple[str, bytes]], batch: int = 64
) -> list[dict]:
    """Invoke in batches, letting the serving worker finish the refits each batch made due
    before the next (in production they land a few milliseconds later). After a cold-start
    capture nothing more is captured until the regions are refitted: at most one per batch."""
    answers: list[dict] = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        body = {"items": [{"data": data_uri(data)} for _, data in chunk]}
        response = client.post(f"/v1/functions/{fid}/invoke/batch", json=body)
        assert response.status_code == 200, response.text
        answers += response.json()["data"]
        assert settle(client.app.state.runtime)  # type: ignore[attr-defined]
    return answers


@pytest.mark.databases
def test_invoke_before_any_model_answers_no_label_and_captures_typical_inputs(
    client: TestClient,
) -> None:
    fid = function_without_labels(client)
    single = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(shade("red", 1))})
    assert single.status_code == 200, single.text
    assert single.json() | {"capture": None} == {
        "labelName": None,
        "labelId": None,
        "confidence": None,
        "labelConfidences": [],
        "modelVersion": None,
        "capture": None,
    }
    assert single.json()["capture"]["captured"] is False  # too little traffic seen yet
    answers = invoke_all(client, fid, traffic(160))
    assert all(a["labelName"] is None and a["modelVersion"] is None for a in answers)
    assert not any(a["capture"]["captured"] for a in answers[:98])  # the reservoir warms up
    reasons = [a["capture"]["reason"] for a in answers if a["capture"]["captured"]]
    assert reasons and set(reasons) == {"cold_start"}
    queue = client.get(f"/v1/functions/{fid}/review").json()
    assert queue["count"] == len(reasons)
    assert all(i["reason"] == "cold_start" and i["predictedLabel"] is None for i in queue["data"])


def test_annotating_the_cold_start_queue_trains_the_first_model(settings: Settings) -> None:
    settings = dataclasses.replace(settings, retrain_interval=0.2, retrain_min_annotations=3)
    with TestClient(create_app(settings), headers=AUTH) as client:
        fid = function_without_labels(client)
        images = traffic(200, seed=1)
        answers = invoke_all(client, fid, images, batch=8)
        captured = [
            (a["capture"]["itemId"], name)
            for a, (name, _) in zip(answers, images, strict=True)
            if a["capture"]["captured"]
        ]
        assert len({name for _, name in captured}) >= 2  # the queue spans the colours
        assert client.get(f"/v1/functions/{fid}/samples").json()["count"] == 0  # no upload
        for item_id, name in captured:
            annotated = client.post(
                f"/v1/functions/{fid}/review/{item_id}/annotate", json={"labelName": name}
            )
            assert annotated.status_code == 200, annotated.text

        def trained() -> list[dict]:  # version 0 would be a zero-shot head, not a training
            models = client.get(f"/v1/functions/{fid}/models").json()["data"]
            return [m for m in models if m["version"] >= 1]

        first = wait_until(trained, what="the scheduler to train from the queue alone")[0]
        assert first["trigger"] == "schedule"
        status = wait_until(
            lambda: client.get(f"/v1/functions/{fid}/training").json()["deployedVersion"],
            what="a trained version deployed",
        )
        answer = client.post(
            f"/v1/functions/{fid}/invoke", json={"data": data_uri(shade("red", 7))}
        )
        assert answer.json()["modelVersion"] == status
        assert answer.json()["labelName"] in COLOURS


@pytest.mark.databases
def test_rules_capture_the_matching_colour_and_survive_deleting_examples(
    client: TestClient,
) -> None:
    fid = function_without_labels(client)
    ids: dict[str, list[str]] = {"red": [], "blue": []}
    for seed in range(3):
        for name in ids:
            body = {"data": data_uri(shade(name, 900 + seed)), "annotation": {"labelName": name}}
            response = client.post(f"/v1/functions/{fid}/samples", json=body)
            ids[name].append(response.json()["id"])
    rules = [{"name": "reds", "examples": ids["red"], "similarity": 0.95}]
    response = client.put(f"/v1/functions/{fid}/capture-policy", json={"rules": rules})
    assert response.status_code == 200, response.text
    assert response.json()["policy"]["rules"] == rules  # as written, no vectors
    red = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(shade("red", 50))})
    assert red.json()["capture"]["reason"] == "rule:reds"
    blue = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(shade("blue", 51))})
    assert blue.json()["capture"]["reason"] != "rule:reds"
    for sample_id in ids["red"]:
        assert client.delete(f"/v1/functions/{fid}/samples/{sample_id}").status_code == 204
    again = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(shade("red", 52))})
    assert again.status_code == 200 and again.json()["capture"]["reason"] == "rule:reds"
    # other settings change without touching the rules
    response = client.put(f"/v1/functions/{fid}/capture-policy", json={"targetRate": 0.2})
    assert response.json()["policy"]["rules"] == rules


def test_rule_validation_is_a_422(client: TestClient) -> None:
    fid = function_without_labels(client)
    body = {"data": data_uri(shade("red", 3)), "annotation": {"labelName": "red"}}
    sample_id = client.post(f"/v1/functions/{fid}/samples", json=body).json()["id"]
    url = f"/v1/functions/{fid}/capture-policy"
    bad = {
        "unknown id": [{"name": "r", "examples": [sample_id, "sample_missing"]}],
        "empty examples": [{"name": "r", "examples": []}],
        "duplicate names": [
            {"name": "r", "examples": [sample_id]},
            {"name": "r", "examples": [sample_id]},
        ],
        "no examples or text": [{"name": "r"}],
        "bad similarity": [{"name": "r", "examples": [sample_id], "similarity": 2}],
    }
    for case, rules in bad.items():
        response = client.put(url, json={"rules": rules})
        assert response.status_code == 422, (case, response.text)
        assert response.json()["message"], case
    assert "sample_missing" in client.put(url, json={"rules": bad["unknown id"]}).json()["message"]
    other = client.post("/v1/functions", json={"name": "other"}).json()["id"]
    foreign = client.put(
        f"/v1/functions/{other}/capture-policy",
        json={"rules": [{"name": "r", "examples": [sample_id]}]},
    )
    assert foreign.status_code == 422  # another function's sample is unknown here
    assert client.get(url).json()["policy"]["rules"] == []  # nothing half-written
    text = client.put(url, json={"rules": [{"name": "night", "text": "a photo at night"}]})
    assert text.status_code == 200, text.text  # the tiny CLIP has a text tower
    assert text.json()["policy"]["rules"][0]["text"] == "a photo at night"


def test_a_text_rule_needs_a_text_tower(client: TestClient) -> None:
    created = client.post("/v1/functions", json={"name": "cnn", "backbone": "efficientnet-lite0"})
    assert created.status_code == 201, created.text
    url = f"/v1/functions/{created.json()['id']}/capture-policy"
    response = client.put(url, json={"rules": [{"name": "night", "text": "a photo at night"}]})
    assert response.status_code == 422
    assert "this backbone has no text tower" in response.json()["message"]

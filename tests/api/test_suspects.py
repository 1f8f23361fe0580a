"""Mislabel suspects: a training queues samples whose label looks wrong; review fixes them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import BLUE, RED, data_uri, png_bytes

pytestmark = pytest.mark.databases

GREEN = (30, 200, 30)
COLOURS = {"red": RED, "blue": BLUE, "green": GREEN}
# (true colour, given label, image seed) of the planted mistakes
FLIPS = [("red", "blue", 100), ("blue", "green", 101)]


def _add(client: TestClient, fid: str, colour: str, label: str, seed: int) -> str:
    body = {
        "data": data_uri(png_bytes(COLOURS[colour], seed=seed)),
        "annotation": {"labelName": label},
    }
    response = client.post(f"/v1/functions/{fid}/samples", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _function_with_flips(client: TestClient, **policy: object) -> tuple[str, dict[str, str]]:
    """A function of 3 colours x 8 samples plus the planted flips; returns their ids -> truth."""
    fid = client.post("/v1/functions", json={"name": "colours"}).json()["id"]
    if policy:
        response = client.put(f"/v1/functions/{fid}/capture-policy", json=policy)
        assert response.status_code == 200, response.text
    for seed in range(8):
        for colour in COLOURS:
            _add(client, fid, colour, colour, seed)
    flipped = {_add(client, fid, true, given, seed): true for true, given, seed in FLIPS}
    return fid, flipped


def _train(client: TestClient, fid: str) -> dict:
    response = client.post(f"/v1/functions/{fid}/train")
    assert response.status_code == 200, response.text
    return response.json()


def _suspects(client: TestClient, fid: str, status: str = "pending") -> list[dict]:
    response = client.get(
        f"/v1/functions/{fid}/review", params={"kind": "suspect", "status": status}
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _label_of(client: TestClient, fid: str, sample_id: str) -> str:
    return client.get(f"/v1/functions/{fid}/samples/{sample_id}").json()["annotation"]["labelName"]


def test_training_queues_the_planted_flips_as_suspects(client: TestClient) -> None:
    fid, flipped = _function_with_flips(client)
    _train(client, fid)

    suspects = _suspects(client, fid)
    by_sample = {s["sampleId"]: s for s in suspects}
    assert set(flipped) <= set(by_sample), suspects
    assert len(suspects) <= 4  # 26 clean samples: at most a couple of false alarms
    for sample_id, truth in flipped.items():
        item = by_sample[sample_id]
        assert item["kind"] == "suspect" and item["status"] == "pending"
        assert item["suggestedLabel"] == truth and item["givenLabel"] != truth
        assert 0.5 < item["score"] <= 1.0 and 0 <= item["scores"]["labelQuality"] < 0.5
        assert item["modelVersion"] == 1
        assert client.get(item["imageUrl"]).status_code == 200
    scores = [s["score"] for s in suspects]
    assert scores == sorted(scores, reverse=True)
    # the kind filter: captures alone hold none of them, every kind holds them all
    captures = client.get(f"/v1/functions/{fid}/review", params={"kind": "capture"}).json()
    assert captures["count"] == 0
    every = client.get(f"/v1/functions/{fid}/review").json()
    assert every["count"] == len(suspects)
    # a second training does not queue the same samples again
    _train(client, fid)
    again = _suspects(client, fid)
    assert sorted(s["sampleId"] for s in again) == sorted(by_sample)
    assert all(s["modelVersion"] == 2 for s in again)


def test_relabel_and_confirm_then_no_second_suggestion(client: TestClient) -> None:
    fid, flipped = _function_with_flips(client)
    _train(client, fid)
    by_sample = {s["sampleId"]: s for s in _suspects(client, fid)}
    samples_before = client.get(f"/v1/functions/{fid}/samples").json()["count"]
    counter_before = client.get(f"/v1/functions/{fid}/training").json()["newAnnotations"]
    fixed_id, confirmed_id = list(flipped)
    fixed, confirmed = by_sample[fixed_id], by_sample[confirmed_id]

    done = client.post(
        f"/v1/functions/{fid}/review/{fixed['id']}/annotate",
        json={"labelName": fixed["suggestedLabel"]},
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "annotated" and done.json()["sampleId"] == fixed_id
    assert _label_of(client, fid, fixed_id) == flipped[fixed_id]
    # a reviewer insists on the planted (wrong) label: that is a confirmation
    kept = client.post(
        f"/v1/functions/{fid}/review/{confirmed['id']}/annotate",
        json={"labelName": confirmed["givenLabel"]},
    )
    assert kept.status_code == 200, kept.text
    assert _label_of(client, fid, confirmed_id) == confirmed["givenLabel"]

    assert client.get(f"/v1/functions/{fid}/samples").json()["count"] == samples_before
    training = client.get(f"/v1/functions/{fid}/training").json()
    assert training["newAnnotations"] == counter_before + 1  # the relabel, not the confirmation

    version = _train(client, fid)
    assert version["labelsChanged"] == 1
    pending = {s["sampleId"] for s in _suspects(client, fid)}
    assert confirmed_id not in pending and fixed_id not in pending
    models = client.get(f"/v1/functions/{fid}/models").json()["data"]
    changed = {m["version"]: m["labelsChanged"] for m in models}
    assert changed[version["version"]] == 1 and changed[version["version"] - 1] in (None, 0)

    # once its label changes, a confirmed sample may be suspected again
    wrong = "red" if flipped[confirmed_id] != "red" else "green"
    response = client.put(
        f"/v1/functions/{fid}/samples/{confirmed_id}/annotation", json={"labelName": wrong}
    )
    assert response.status_code == 200, response.text
    _train(client, fid)
    assert confirmed_id in {s["sampleId"] for s in _suspects(client, fid)}


def test_suspect_budget_skip_discard_and_deleted_samples(client: TestClient) -> None:
    fid, flipped = _function_with_flips(client, suspectBudget=1)
    _train(client, fid)
    first = _suspects(client, fid)
    assert len(first) == 1 and first[0]["sampleId"] in flipped

    skipped = client.post(f"/v1/functions/{fid}/review/{first[0]['id']}/skip")
    assert skipped.status_code == 200 and skipped.json()["status"] == "skipped"
    _train(client, fid)  # the skipped one stays skipped and is not queued twice; one new one
    second = _suspects(client, fid)
    assert len(second) == 1 and second[0]["sampleId"] != first[0]["sampleId"]
    assert [s["id"] for s in _suspects(client, fid, "skipped")] == [first[0]["id"]]

    discarded = client.post(f"/v1/functions/{fid}/review/{second[0]['id']}/discard")
    assert discarded.json()["status"] == "discarded"
    deleted = client.delete(f"/v1/functions/{fid}/samples/{first[0]['sampleId']}")
    assert deleted.status_code == 204
    assert _suspects(client, fid, "skipped") == []
    _train(client, fid)
    # a discarded suspicion is not raised again while the label stands
    assert second[0]["sampleId"] not in {s["sampleId"] for s in _suspects(client, fid)}

    client.put(f"/v1/functions/{fid}/capture-policy", json={"suspectBudget": 0})
    _train(client, fid)
    assert _suspects(client, fid) == []


def test_bad_kind_and_budget_are_client_errors(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
    response = client.get(f"/v1/functions/{fid}/review", params={"kind": "bogus"})
    assert response.status_code == 422
    for bad in ({"suspectBudget": -1}, {"suspectBudget": 1.5}, {"suspectBudget": 5000}):
        response = client.put(f"/v1/functions/{fid}/capture-policy", json=bad)
        assert response.status_code == 422, (bad, response.text)
    policy = client.get(f"/v1/functions/{fid}/capture-policy").json()["policy"]
    assert policy["suspectBudget"] == 20

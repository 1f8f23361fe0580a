"""Novelty on invoke, new-class proposals (list, accept, dismiss), "none of these labels", drift."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient

from tests.conftest import (
    BLUE,
    GREEN,
    PROPOSAL_POLICY,
    RED,
    add_colour_samples,
    data_uri,
    png_bytes,
    wait_for_novelty,
)


def _function(client: TestClient, **policy: object) -> str:
    fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
    add_colour_samples(client, fid, per_label=8)
    assert client.post(f"/v1/functions/{fid}/train").status_code == 200
    response = client.put(f"/v1/functions/{fid}/capture-policy", json={**PROPOSAL_POLICY, **policy})
    assert response.status_code == 200, response.text
    wait_for_novelty(client, fid)
    return fid


def _invoke(client: TestClient, fid: str, colour: tuple[int, int, int], seed: int) -> dict:
    body = {"data": data_uri(png_bytes(colour, seed=seed))}
    response = client.post(f"/v1/functions/{fid}/invoke", json=body)
    assert response.status_code == 200, response.text
    return response.json()["capture"]


def _proposals(client: TestClient, fid: str) -> list[dict]:
    response = client.get(f"/v1/functions/{fid}/proposals")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["data"])
    return body["data"]


@pytest.mark.databases
def test_unseen_colour_is_novel_captured_and_proposed(client: TestClient) -> None:
    fid = _function(client)
    seen = [
        _invoke(client, fid, colour, seed) for seed in range(100, 106) for colour in (RED, BLUE)
    ]
    novel = [_invoke(client, fid, GREEN, seed) for seed in range(100, 108)]
    assert max(c["novelty"] for c in seen) < min(c["novelty"] for c in novel)
    assert all(c["captured"] and c["reason"] == "novel" for c in novel)
    proposals = _proposals(client, fid)
    assert len(proposals) == 1
    (proposal,) = proposals
    green_items = {c["itemId"] for c in novel}
    assert set(proposal["itemIds"]) == green_items
    assert proposal["size"] == len(green_items)
    assert proposal["nearestLabel"] in ("red", "blue")


def test_every_invoke_joins_the_traffic_window_novelty_is_measured_against(
    client: TestClient,
) -> None:
    """Invokes before the first trained head (the tiny CLIP's zero-shot head serves them) and
    after it feed the function's window (tests/capture/test_traffic.py covers how novelty is
    measured relative to it)."""
    fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
    add_colour_samples(client, fid, per_label=8)
    for seed in range(5):
        _invoke(client, fid, BLUE, seed)
    runtime = client.app.state.runtime
    index = runtime.indexes.get(fid)
    assert index is not None
    window = runtime.novelty.traffic(fid, index.dim)
    # the test backbone makes noisy solid colours near-identical: repeats do not pile up
    assert 1 <= window.seen <= 5
    before = window.seen
    assert client.post(f"/v1/functions/{fid}/train").status_code == 200
    scores = [_invoke(client, fid, colour, 1000)["novelty"] for colour in (RED, GREEN)]
    assert all(score is not None and 0.0 <= score <= 1.0 for score in scores)
    assert window.seen > before
    assert runtime.novelty.traffic(fid, index.dim) is window
    assert client.delete(f"/v1/functions/{fid}").status_code in (200, 204)
    assert runtime.novelty.traffic(fid, index.dim).seen == 0  # deleting drops it


def _green_proposal(client: TestClient, **policy: object) -> tuple[str, dict, list[dict]]:
    fid = _function(client, **policy)
    novel = [_invoke(client, fid, GREEN, seed) for seed in range(100, 106)]
    (proposal,) = _proposals(client, fid)
    return fid, proposal, novel


@pytest.mark.databases
def test_accept_creates_the_label_and_samples(client: TestClient) -> None:
    fid, proposal, _ = _green_proposal(client)
    left_out = proposal["itemIds"][0]
    url = f"/v1/functions/{fid}/proposals/{proposal['id']}/accept"
    response = client.post(url, json={"labelName": " green ", "excludeItemIds": [left_out]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["labelName"] == "green" and body["count"] == proposal["size"] - 1
    assert {item["labelName"] for item in body["data"]} == {"green"}
    assert all(item["status"] == "annotated" and item["sampleId"] for item in body["data"])
    labels = client.get(f"/v1/functions/{fid}/labels").json()["data"]
    assert "green" in {label["name"] for label in labels}
    samples = client.get(f"/v1/functions/{fid}/samples", params={"count": 100}).json()["data"]
    green = [s for s in samples if (s["annotation"] or {}).get("labelName") == "green"]
    assert len(green) == proposal["size"] - 1
    left = client.get(f"/v1/functions/{fid}/review", params={"count": 100}).json()["data"]
    assert left_out in {item["id"] for item in left}  # the excluded item is still in review
    assert _proposals(client, fid) == []
    assert client.post(url, json={"labelName": "green2"}).status_code == 404
    # the novelty model is refitted in the background with the new label: green stops being novel
    deadline = time.monotonic() + 60
    while _invoke(client, fid, GREEN, seed=300)["novelty"] > PROPOSAL_POLICY["noveltyThreshold"]:
        assert time.monotonic() < deadline, "green stayed novel after its label was created"
        time.sleep(0.05)


@pytest.mark.databases
def test_dismissed_items_never_come_back(client: TestClient) -> None:
    fid, proposal, _ = _green_proposal(client)
    url = f"/v1/functions/{fid}/proposals/{proposal['id']}/dismiss"
    response = client.post(url)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == proposal["id"]
    assert _proposals(client, fid) == []
    # more of the same: the new items alone may form a proposal, never with the dismissed ones
    more = [_invoke(client, fid, GREEN, seed) for seed in range(200, 206)]
    for again in _proposals(client, fid):
        assert not set(again["itemIds"]) & set(proposal["itemIds"])
        assert set(again["itemIds"]) <= {c["itemId"] for c in more}
    assert client.post(url).status_code == 404
    pending = client.get(f"/v1/functions/{fid}/review/counts").json()["pending"]
    assert pending >= proposal["size"]  # dismissed items stay in review


def test_accept_refusals(client: TestClient) -> None:
    fid, proposal, _ = _green_proposal(client)
    url = f"/v1/functions/{fid}/proposals/{proposal['id']}/accept"
    assert client.post(url, json={"labelName": "red"}).status_code == 409  # label exists
    stranger = client.post(url, json={"labelName": "green", "excludeItemIds": ["item_0"]})
    assert stranger.status_code == 422 and "item_0" in stranger.json()["message"]
    everything = client.post(
        url, json={"labelName": "green", "excludeItemIds": proposal["itemIds"]}
    )
    assert everything.status_code == 422
    assert client.post(url, json={"labelName": ""}).status_code == 422
    assert client.post(url, json={"labelName": "g", "unknown": 1}).status_code == 422
    missing = f"/v1/functions/{fid}/proposals/proposal_0/accept"
    assert client.post(missing, json={"labelName": "green"}).status_code == 404
    assert client.get("/v1/functions/function_0/proposals").status_code == 404
    assert _proposals(client, fid) == [proposal]  # nothing was written


def test_policy_forbidding_new_labels_refuses_accept(client: TestClient) -> None:
    fid, proposal, _ = _green_proposal(client, allowNewLabels=False)
    url = f"/v1/functions/{fid}/proposals/{proposal['id']}/accept"
    assert client.post(url, json={"labelName": "green"}).status_code == 422
    assert _proposals(client, fid) == [proposal]


def test_reviewer_marks_none_of_these_labels(client: TestClient) -> None:
    # seen colours are captured as uncertain or random, never novel: a reviewer marks them
    fid = _function(client, targetRate=1.0, noveltyThreshold=1.0, initialThreshold=0.0)
    captures = [_invoke(client, fid, GREEN, seed) for seed in range(100, 106)]
    ids = [c["itemId"] for c in captures if c["captured"]]
    assert len(ids) >= 4 and all(c["reason"] != "novel" for c in captures if c["captured"])
    assert _proposals(client, fid) == []
    for item_id in ids:
        response = client.post(f"/v1/functions/{fid}/review/{item_id}/novel")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "skipped"
    (proposal,) = _proposals(client, fid)
    assert set(proposal["itemIds"]) == set(ids)
    assert client.post(f"/v1/functions/{fid}/review/item_0/novel").status_code == 404
    client.post(f"/v1/functions/{fid}/review/{ids[0]}/discard")
    assert client.post(f"/v1/functions/{fid}/review/{ids[0]}/novel").status_code == 409


def test_drift_share_in_metrics_and_prometheus(client: TestClient) -> None:
    fid = _function(client)
    for seed in range(100, 104):
        _invoke(client, fid, RED, seed)
        _invoke(client, fid, GREEN, seed)
    drift = client.get(f"/v1/functions/{fid}/metrics").json()["drift"]
    assert drift["noveltyThreshold"] == 0.9
    (hour,) = drift["hours"]
    # 9 scored: these 8 and wait_for_novelty's labelled probe (not novel)
    assert hour["invokes"] == 9 and 4 <= hour["novel"] < 8
    assert drift["novelShareLastHour"] == hour["novelShare"] == hour["novel"] / 9
    text = client.get("/metrics").text
    # every invoke counts, also wait_for_novelty's probes from before the model was ready
    (invokes,) = re.findall(rf'winnow_invokes_total{{function_id="{fid}"}} (\d+)\.0', text)
    assert int(invokes) >= 9
    assert f'winnow_scored_invokes_total{{function_id="{fid}"}} 9.0' in text
    assert f'winnow_novel_invokes_total{{function_id="{fid}"}} {hour["novel"]}.0' in text
    assert f'winnow_novel_share{{function_id="{fid}"}}' in text

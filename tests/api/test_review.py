"""Invoke capture through the API and the review queue actions."""

import pytest
from fastapi.testclient import TestClient

from tests.conftest import RED, add_colour_samples, data_uri, png_bytes

# Runs on SQLite and on a fresh PostgreSQL database (tests/databases.py).
pytestmark = pytest.mark.databases


def _trained_function(client: TestClient, **policy) -> str:
    fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
    add_colour_samples(client, fid, per_label=4)
    assert client.post(f"/v1/functions/{fid}/train").status_code == 200
    if policy:
        response = client.put(f"/v1/functions/{fid}/capture-policy", json=policy)
        assert response.status_code == 200, response.text
    return fid


def _invoke(client: TestClient, fid: str, data: bytes, **params) -> dict:
    response = client.post(
        f"/v1/functions/{fid}/invoke", json={"data": data_uri(data)}, params=params
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_capture_policy_read_and_validate(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
    policy = client.get(f"/v1/functions/{fid}/capture-policy").json()
    assert policy["policy"]["targetRate"] == 0.1 and "threshold" in policy["status"]
    changed = client.put(f"/v1/functions/{fid}/capture-policy", json={"targetRate": 0.5})
    assert changed.json()["policy"]["targetRate"] == 0.5
    assert changed.json()["policy"]["maxPerHour"] == 100
    for bad in (
        {"targetRate": 2},
        {"bogus": 1},
        {"strategy": "nope"},
        {"maxPerHour": 10, "maxPerDay": 5},
    ):
        response = client.put(f"/v1/functions/{fid}/capture-policy", json=bad)
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["message"]
    assert client.get(f"/v1/functions/{fid}/capture-policy").json()["policy"]["targetRate"] == 0.5


def test_captured_items_flow_through_review(client: TestClient) -> None:
    # Capture everything that is not a near-duplicate: random slice at 100%.
    fid = _trained_function(client, randomRate=1.0, duplicateSimilarity=0.999)
    probe = png_bytes((120, 30, 120), seed=7)
    first = _invoke(client, fid, probe)
    assert first["capture"]["captured"] and first["capture"]["reason"] == "random"
    item_id = first["capture"]["itemId"]
    again = [_invoke(client, fid, probe)["capture"] for _ in range(5)]
    assert not any(c["captured"] for c in again), "the same image must be captured at most once"
    assert not _invoke(client, fid, png_bytes(RED, seed=50), capture="false")["capture"]

    queue = client.get(f"/v1/functions/{fid}/review", params={"status": "pending"}).json()
    assert queue["count"] == 1 and queue["data"][0]["id"] == item_id
    item = queue["data"][0]
    assert item["predictedLabel"] in ("red", "blue") and item["modelVersion"] == 1
    image = client.get(item["imageUrl"])
    assert (
        image.status_code == 200
        and image.content == probe
        and image.headers["content-type"] == "image/png"
    )

    samples_before = client.get(f"/v1/functions/{fid}/samples").json()["count"]
    done = client.post(
        f"/v1/functions/{fid}/review/{item_id}/annotate", json={"labelName": "purple"}
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "annotated" and done.json()["sampleId"]
    repeat = client.post(
        f"/v1/functions/{fid}/review/{item_id}/annotate", json={"labelName": "purple"}
    )
    assert repeat.json()["sampleId"] == done.json()["sampleId"]
    samples = client.get(f"/v1/functions/{fid}/samples", params={"annotated": "true"}).json()
    assert samples["count"] == samples_before + 1
    review_samples = [s for s in samples["data"] if s["source"] == "review"]
    assert len(review_samples) == 1 and review_samples[0]["annotation"]["labelName"] == "purple"
    assert "purple" in [
        lab["name"] for lab in client.get(f"/v1/functions/{fid}/labels").json()["data"]
    ]
    # The annotated image is now a labelled neighbour: invoking it again is not captured.
    assert not _invoke(client, fid, probe)["capture"]["captured"]

    counts = client.get(f"/v1/functions/{fid}/review/counts").json()
    assert counts == {"pending": 0, "annotated": 1, "skipped": 0, "discarded": 0, "disputed": 0}


def test_skip_discard_and_transitions(client: TestClient) -> None:
    fid = _trained_function(client, randomRate=1.0, duplicateSimilarity=0.999)
    ids = [
        _invoke(client, fid, png_bytes(c, seed=s))["capture"]["itemId"]
        for c, s in (((200, 120, 30), 60), ((30, 200, 120), 61), ((150, 150, 150), 62))
    ]
    assert all(ids)
    skipped = client.post(f"/v1/functions/{fid}/review/{ids[0]}/skip")
    assert skipped.json()["status"] == "skipped"
    discarded = client.post(f"/v1/functions/{fid}/review/{ids[1]}/discard")
    assert discarded.json()["status"] == "discarded"
    refused = client.post(
        f"/v1/functions/{fid}/review/{ids[1]}/annotate", json={"labelName": "red"}
    )
    assert refused.status_code == 409 and "discarded" in refused.json()["message"]
    # A skipped item can still be labelled later.
    late = client.post(f"/v1/functions/{fid}/review/{ids[0]}/annotate", json={"labelName": "red"})
    assert late.status_code == 200
    missing = client.post(f"/v1/functions/{fid}/review/item_0000/skip")
    assert missing.status_code == 404
    other = client.post("/v1/functions", json={"name": "other"}).json()["id"]
    assert client.post(f"/v1/functions/{other}/review/{ids[2]}/skip").status_code == 404


def test_bulk_annotate_is_all_or_nothing_and_policy_can_forbid_new_labels(
    client: TestClient,
) -> None:
    fid = _trained_function(client, randomRate=1.0, duplicateSimilarity=0.999, allowNewLabels=False)
    ids = [
        _invoke(client, fid, png_bytes(c, seed=3))["capture"]["itemId"]
        for c in ((200, 120, 30), (30, 200, 120))
    ]
    bad = client.post(
        f"/v1/functions/{fid}/review/annotate",
        json={
            "items": [
                {"itemId": ids[0], "labelName": "red"},
                {"itemId": ids[1], "labelName": "green"},
            ]
        },
    )
    assert bad.status_code == 422 and "green" in bad.json()["message"]
    assert client.get(f"/v1/functions/{fid}/review/counts").json()["pending"] == 2
    good = client.post(
        f"/v1/functions/{fid}/review/annotate",
        json={"items": [{"itemId": i, "labelName": "red"} for i in ids], "annotatedBy": "ana"},
    )
    assert good.status_code == 200 and good.json()["count"] == 2
    assert {item["annotatedBy"] for item in good.json()["data"]} == {"ana"}
    assert client.get(f"/v1/functions/{fid}/review/counts").json()["annotated"] == 2


def test_budget_caps_captures(client: TestClient) -> None:
    fid = _trained_function(
        client, randomRate=1.0, duplicateSimilarity=0.999, maxPerHour=3, maxPerDay=3
    )
    colours = [(40 * i, 255 - 40 * i, 128) for i in range(6)]
    results = [_invoke(client, fid, png_bytes(c, seed=9))["capture"] for c in colours]
    assert sum(r["captured"] for r in results) == 3
    assert client.get(f"/v1/functions/{fid}/review/counts").json()["pending"] == 3


def test_listing_an_unknown_status_or_kind_is_unprocessable(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
    url = f"/v1/functions/{fid}/review"
    bogus = client.get(url, params={"status": "bogus"})
    assert bogus.status_code == 422 and "unknown status 'bogus'" in bogus.json()["message"]
    assert client.get(url, params={"kind": "bogus"}).status_code == 422
    assert client.get(url, params={"status": "skipped"}).json() == {"data": [], "count": 0}

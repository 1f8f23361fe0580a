"""Similarity search over a function's labelled samples: by image and from a stored sample."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from service.settings import Settings
from tests.conftest import AUTH, BLUE, RED, add_colour_samples, data_uri, png_bytes

MISSING_FUNCTION = "function_00000000000000000000"
MISSING_SAMPLE = "sample_00000000000000000000"


def _function(client: TestClient, per_label: int = 6) -> str:
    fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
    add_colour_samples(client, fid, per_label=per_label)
    return fid


def _labelled(client: TestClient, fid: str) -> dict[str, str]:
    """Labelled sample id -> label name."""
    page = client.get(f"/v1/functions/{fid}/samples", params={"annotated": True}).json()
    return {s["id"]: s["annotation"]["labelName"] for s in page["data"]}


def _search(client: TestClient, fid: str, colour: tuple[int, int, int], **body) -> dict:
    payload = {"data": data_uri(png_bytes(colour, seed=50)), **body}
    response = client.post(f"/v1/functions/{fid}/search", json=payload)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_nearest_samples_of_a_red_image_are_red(client: TestClient) -> None:
    fid = _function(client)
    labelled = _labelled(client, fid)
    found = _search(client, fid, RED, count=5)
    assert found["count"] == len(found["data"]) == 5
    assert {hit["labelName"] for hit in found["data"]} == {"red"}
    for hit in found["data"]:
        assert labelled[hit["sampleId"]] == hit["labelName"]
        assert set(hit) == {"sampleId", "labelName", "similarity", "score"}
    scores = [hit["score"] for hit in found["data"]]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= hit["similarity"] <= 1.0 for hit in found["data"])
    assert {hit["labelName"] for hit in _search(client, fid, BLUE, count=5)["data"]} == {"blue"}


def _search_bytes(client: TestClient, fid: str, data: bytes) -> dict:
    response = client.post(f"/v1/functions/{fid}/search", json={"data": data_uri(data)})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_stored_image_is_its_own_nearest_sample(client: TestClient) -> None:
    fid = _function(client, per_label=3)
    image = png_bytes(RED, seed=1000)
    body = {"data": data_uri(image), "annotation": {"labelName": "red"}}
    stored = client.post(f"/v1/functions/{fid}/samples", json=body).json()["id"]
    top = _search_bytes(client, fid, image)["data"][0]
    assert (top["sampleId"], top["labelName"]) == (stored, "red")
    assert top["similarity"] == pytest.approx(1.0)


def _label_probability(client: TestClient, fid: str, image: bytes) -> dict[str, float]:
    """What the serving model says about ``image``, label by label ({} before any model)."""
    answer = client.post(
        f"/v1/functions/{fid}/invoke", json={"data": data_uri(image)}, params={"capture": "false"}
    ).json()
    return {c["labelName"]: c["confidence"] for c in answer.get("labelConfidences", [])}


def test_hits_are_ranked_by_similarity_plus_a_tenth_of_the_models_probability(
    client: TestClient,
) -> None:
    fid = _function(client, per_label=4)
    # a purple query sits between the colours, so similarity and the model both matter
    query = png_bytes((130, 30, 130), seed=77)
    for trained in (False, True):
        if trained:
            assert client.post(f"/v1/functions/{fid}/train").status_code == 200
        probability = _label_probability(client, fid, query)
        hits = _search_bytes(client, fid, query)["data"]
        for hit in hits:
            expected = hit["similarity"] + 0.1 * probability.get(hit["labelName"], 0.0)
            assert hit["score"] == pytest.approx(expected, abs=1e-5)
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert probability, "no model answered after training: the test proved nothing"


def test_a_multipart_upload_and_its_count_field(client: TestClient) -> None:
    fid = _function(client, per_label=3)
    files = {"file": ("red.png", png_bytes(RED, seed=50), "image/png")}
    response = client.post(f"/v1/functions/{fid}/search", files=files, data={"count": "2"})
    assert response.status_code == 200, response.text
    assert [hit["labelName"] for hit in response.json()["data"]] == ["red", "red"]
    bad = client.post(f"/v1/functions/{fid}/search", files=files, data={"count": "many"})
    assert bad.status_code == 422, bad.text
    assert "count" in bad.json()["message"]


def test_count_is_respected_and_defaults_to_ten(client: TestClient) -> None:
    fid = _function(client, per_label=6)  # 12 labelled samples
    assert _search(client, fid, RED)["count"] == 10
    assert _search(client, fid, RED, count=1)["count"] == 1
    assert _search(client, fid, RED, count=100)["count"] == 12  # fewer exist: all of them
    sample = next(iter(_labelled(client, fid)))
    similar = f"/v1/functions/{fid}/samples/{sample}/similar"
    assert client.get(similar).json()["count"] == 10
    assert client.get(similar, params={"count": 3}).json()["count"] == 3


def test_similar_to_a_sample_excludes_the_sample_itself(client: TestClient) -> None:
    fid = _function(client, per_label=4)
    labelled = _labelled(client, fid)
    for sample_id, label in labelled.items():
        found = client.get(f"/v1/functions/{fid}/samples/{sample_id}/similar?count=100").json()
        ids = [hit["sampleId"] for hit in found["data"]]
        assert sample_id not in ids
        assert sorted(ids) == sorted(set(labelled) - {sample_id})
        assert found["count"] == len(labelled) - 1
        assert [hit["labelName"] for hit in found["data"][:3]] == [label] * 3


def test_unlabelled_samples_and_review_items_never_appear(client: TestClient) -> None:
    fid = _function(client, per_label=3)
    query = png_bytes(RED, seed=50)
    unlabelled = client.post(f"/v1/functions/{fid}/samples", json={"data": data_uri(query)})
    unlabelled_id = unlabelled.json()["id"]
    assert client.post(f"/v1/functions/{fid}/train").status_code == 200
    policy = {"randomRate": 1.0, "duplicateSimilarity": 1.0}
    assert client.put(f"/v1/functions/{fid}/capture-policy", json=policy).status_code == 200
    items = []
    for seed in (50, 51, 52):  # the query image itself, and more red ones, go to review
        invoked = client.post(
            f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes(RED, seed=seed))}
        ).json()
        if invoked["capture"]["captured"]:
            items.append(invoked["capture"]["itemId"])
    assert items, "nothing was captured: the test would prove nothing"
    labelled = _labelled(client, fid)

    ids = {hit["sampleId"] for hit in _search_bytes(client, fid, query)["data"]}
    assert ids == set(labelled)  # all 6 labelled samples, nothing else
    similar = client.get(f"/v1/functions/{fid}/samples/{unlabelled_id}/similar").json()
    assert {hit["sampleId"] for hit in similar["data"]} == set(labelled)

    # unlabelling or deleting a sample takes it out of the answers at once
    gone, unlabelled_now = list(labelled)[:2]
    assert client.delete(f"/v1/functions/{fid}/samples/{gone}").status_code == 204
    assert client.delete(f"/v1/functions/{fid}/samples/{unlabelled_now}/annotation").is_success
    ids = {hit["sampleId"] for hit in _search_bytes(client, fid, query)["data"]}
    assert ids == set(labelled) - {gone, unlabelled_now}


def test_a_function_without_labelled_samples_finds_nothing(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "empty"}).json()["id"]
    assert _search(client, fid, RED) == {"data": [], "count": 0}
    sample = client.post(
        f"/v1/functions/{fid}/samples", json={"data": data_uri(png_bytes(RED))}
    ).json()["id"]
    similar = client.get(f"/v1/functions/{fid}/samples/{sample}/similar")
    assert similar.json() == {"data": [], "count": 0}


def test_missing_functions_and_samples_are_404(client: TestClient) -> None:
    fid = _function(client, per_label=2)
    other = _function(client, per_label=2)
    other_sample = next(iter(_labelled(client, other)))
    body = {"data": data_uri(png_bytes(RED))}
    assert client.post(f"/v1/functions/{MISSING_FUNCTION}/search", json=body).status_code == 404
    sample = next(iter(_labelled(client, fid)))
    paths = [
        f"/v1/functions/{MISSING_FUNCTION}/samples/{sample}/similar",
        f"/v1/functions/{fid}/samples/{MISSING_SAMPLE}/similar",
        f"/v1/functions/{fid}/samples/{other_sample}/similar",  # another function's sample
    ]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 404, (path, response.text)
        assert "not found" in response.json()["message"]


@pytest.mark.parametrize("count", [0, -1, 101, "many", 2.5])
def test_a_bad_count_is_422(client: TestClient, count: object) -> None:
    fid = _function(client, per_label=1)
    sample = next(iter(_labelled(client, fid)))
    body = {"data": data_uri(png_bytes(RED)), "count": count}
    assert client.post(f"/v1/functions/{fid}/search", json=body).status_code == 422
    similar = f"/v1/functions/{fid}/samples/{sample}/similar"
    assert client.get(similar, params={"count": str(count)}).status_code == 422


def test_bad_bodies_and_images_are_refused(client: TestClient) -> None:
    fid = _function(client, per_label=1)
    url = f"/v1/functions/{fid}/search"
    not_an_image = client.post(url, json={"data": data_uri(b"not an image at all")})
    assert not_an_image.status_code == 400
    assert "message" in not_an_image.json()
    assert client.post(url, json={"data": "ftp://example.com/x.png"}).status_code == 400
    assert client.post(url, json={"data": "data:image/png;base64,@@@"}).status_code == 400
    unknown_field = {"data": data_uri(png_bytes(RED)), "limit": 3}
    assert client.post(url, json=unknown_field).status_code == 422
    assert client.post(url, json={"count": 3}).status_code == 422


@pytest.mark.databases
def test_a_replica_finds_what_another_labelled_and_forgets_what_it_removed(
    settings: Settings,
) -> None:
    with (
        TestClient(create_app(settings), headers=AUTH) as one,
        TestClient(create_app(settings), headers=AUTH) as two,
    ):
        fid = _function(one, per_label=2)
        added = two.post(
            f"/v1/functions/{fid}/samples",
            json={"data": data_uri(png_bytes(RED, seed=50)), "annotation": {"labelName": "red"}},
        ).json()["id"]
        assert _search(one, fid, RED, count=1)["data"][0]["sampleId"] == added
        assert two.delete(f"/v1/functions/{fid}/samples/{added}/annotation").is_success
        assert added not in {hit["sampleId"] for hit in _search(one, fid, RED)["data"]}

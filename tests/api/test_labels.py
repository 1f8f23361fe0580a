"""Label names and who may create labels, on every path that names a label: function and label
endpoints, sample uploads, annotation updates, review, and the Nyckel adapter."""

from __future__ import annotations

import unicodedata

import pytest
from fastapi.testclient import TestClient

import review_queue
from store import Sample, session_scope, vector_from_bytes
from tests.api.test_auth import make_key
from tests.conftest import BLUE, RED, data_uri, png_bytes

N = "/nyckel/v1/functions"
NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")
HOSTILE = {
    "a\nb": "U+000A",
    "\x1b[31mred": "U+001B",
    "\u202eevil": "U+202E",
    "zero\u200bwidth": "U+200B",
}


def _image(seed: int = 0, colour: tuple[int, int, int] = RED) -> str:
    return data_uri(png_bytes(colour, seed=seed))


def _function(client: TestClient, labels: list[str], **policy: object) -> str:
    response = client.post("/v1/functions", json={"name": "f", "labels": labels})
    assert response.status_code == 201, response.text
    fid = str(response.json()["id"])
    if policy:
        assert client.put(f"/v1/functions/{fid}/capture-policy", json=policy).status_code == 200
    return fid


def _review_item(client: TestClient, fid: str, seed: int) -> str:
    """A pending review item holding a real image and vector (those of an unlabelled upload)."""
    body = {"data": _image(seed, BLUE)}
    sample_id = client.post(f"/v1/functions/{fid}/samples", json=body).json()["id"]
    with session_scope(client.app.state.runtime.engine) as session:  # type: ignore[attr-defined]
        sample = session.get(Sample, sample_id)
        assert sample is not None
        item = review_queue.create_item(
            session=session,
            function_id=fid,
            blob=sample.blob,
            vector=vector_from_bytes(sample.embedding),
            predicted_label=None,
            confidence=None,
            model_version=None,
            reason="random",
            score=0.5,
            scores={},
        )
        session.flush()
        return item.id


def _labels(client: TestClient, fid: str) -> list[str]:
    return [label["name"] for label in client.get(f"/v1/functions/{fid}/labels").json()["data"]]


def _sample_count(client: TestClient, fid: str) -> int:
    return int(client.get(f"/v1/functions/{fid}/samples").json()["count"])


def test_hostile_label_names_are_refused_on_every_path(client: TestClient) -> None:
    fid = _function(client, ["red"])
    red = client.get(f"/v1/functions/{fid}/labels").json()["data"][0]["id"]
    sample_id = client.post(f"/v1/functions/{fid}/samples", json={"data": _image()}).json()["id"]
    item_id = _review_item(client, fid, seed=1)
    for name, code in HOSTILE.items():
        attempts = {
            "function": client.post("/v1/functions", json={"name": "g", "labels": [name]}),
            "label": client.post(f"/v1/functions/{fid}/labels", json={"name": name}),
            "rename": client.put(f"/v1/functions/{fid}/labels/{red}", json={"name": name}),
            "upload": client.post(
                f"/v1/functions/{fid}/samples",
                json={"data": _image(2), "annotation": {"labelName": name}},
            ),
            "annotation": client.put(
                f"/v1/functions/{fid}/samples/{sample_id}/annotation", json={"labelName": name}
            ),
            "review": client.post(
                f"/v1/functions/{fid}/review/{item_id}/annotate", json={"labelName": name}
            ),
            "nyckel label": client.post(f"{N}/{fid}/labels", json={"name": name}),
            "nyckel upload": client.post(
                f"{N}/{fid}/samples", json={"data": _image(3), "annotation": {"labelName": name}}
            ),
            "nyckel annotation": client.put(
                f"{N}/{fid}/samples/{sample_id}/annotation", json={"labelName": name}
            ),
        }
        for path, response in attempts.items():
            assert response.status_code == 422, (path, name, response.text)
            assert code in response.json()["message"], (path, response.json())
    # nothing was written: no function, label, sample or annotation
    assert [f["id"] for f in client.get("/v1/functions").json()["data"]] == [fid]
    assert _labels(client, fid) == ["red"]
    assert _sample_count(client, fid) == 2  # the unlabelled upload and the review item's image
    assert client.get(f"/v1/functions/{fid}/samples/{sample_id}").json()["annotation"] is None
    assert client.get(f"/v1/functions/{fid}/review/counts").json()["pending"] == 1


@pytest.mark.databases
def test_a_decomposed_name_finds_the_composed_label(client: TestClient) -> None:
    fid = _function(client, [NFC])
    (label,) = client.get(f"/v1/functions/{fid}/labels").json()["data"]
    duplicate = client.post("/v1/functions", json={"name": "g", "labels": [NFC, NFD]})
    assert duplicate.status_code == 422 and "unique" in duplicate.json()["message"]
    assert client.post(f"/v1/functions/{fid}/labels", json={"name": NFD}).status_code == 409
    assert client.post(f"{N}/{fid}/labels", json={"name": NFD}).status_code == 409
    body = {"data": _image(), "annotation": {"labelName": NFD}, "externalId": "one"}
    created = client.post(f"/v1/functions/{fid}/samples", json=body)
    assert created.status_code == 201
    assert created.json()["annotation"] == {"labelName": NFC, "labelId": label["id"]}
    # a retry spelling the name the other way is the same sample, not a conflict
    body["annotation"] = {"labelName": NFC}
    assert client.post(f"/v1/functions/{fid}/samples", json=body).status_code == 200
    nyckel = client.post(
        f"{N}/{fid}/samples", json={"data": _image(1), "annotation": {"labelName": NFD}}
    )
    assert nyckel.status_code == 200 and nyckel.json()["annotation"]["labelId"] == label["id"]
    item_id = _review_item(client, fid, seed=2)
    reviewed = client.post(
        f"/v1/functions/{fid}/review/{item_id}/annotate", json={"labelName": NFD}
    )
    assert reviewed.status_code == 200 and reviewed.json()["labelName"] == NFC
    assert _labels(client, fid) == [NFC]


def test_names_are_case_sensitive(client: TestClient) -> None:
    fid = _function(client, ["Cat", "cat"])
    assert _labels(client, fid) == ["Cat", "cat"]


def test_policy_forbidding_new_labels_holds_on_every_annotation_path(client: TestClient) -> None:
    fid = _function(client, ["red"], allowNewLabels=False)
    annotator = {"Authorization": f"Bearer {make_key(client, ['annotate'], fid)}"}
    first = client.post(
        f"/v1/functions/{fid}/samples",
        json={"data": _image(), "annotation": {"labelName": "red"}},
        headers=annotator,
    )
    assert first.status_code == 201, first.text
    sample_id = first.json()["id"]
    item_id = _review_item(client, fid, seed=1)
    green = {"labelName": "green"}
    for key in (annotator, {}):  # {}: the client's admin key annotates the same way
        attempts = {
            "upload": client.post(
                f"/v1/functions/{fid}/samples",
                json={"data": _image(2), "annotation": green},
                headers=key,
            ),
            "annotation": client.put(
                f"/v1/functions/{fid}/samples/{sample_id}/annotation", json=green, headers=key
            ),
            "review": client.post(
                f"/v1/functions/{fid}/review/{item_id}/annotate", json=green, headers=key
            ),
            "nyckel upload": client.post(
                f"{N}/{fid}/samples", json={"data": _image(3), "annotation": green}, headers=key
            ),
            "nyckel annotation": client.put(
                f"{N}/{fid}/samples/{sample_id}/annotation", json=green, headers=key
            ),
        }
        for path, response in attempts.items():
            assert response.status_code == 422, (path, response.text)
            message = response.json()["message"]
            assert "'green'" in message and "allowNewLabels" in message, (path, message)
    assert _labels(client, fid) == ["red"]
    assert _sample_count(client, fid) == 2  # the red sample and the review item's image
    red_sample = client.get(f"/v1/functions/{fid}/samples/{sample_id}").json()
    assert red_sample["annotation"]["labelName"] == "red"
    # the annotate key still may not create it explicitly; an admin key may, then it is usable
    refused = client.post(f"/v1/functions/{fid}/labels", json={"name": "green"}, headers=annotator)
    assert refused.status_code == 403
    assert client.post(f"/v1/functions/{fid}/labels", json={"name": "green"}).status_code == 201
    relabelled = client.put(
        f"/v1/functions/{fid}/samples/{sample_id}/annotation", json=green, headers=annotator
    )
    assert relabelled.status_code == 200 and relabelled.json()["annotation"]["labelName"] == "green"


def test_annotations_create_labels_while_the_policy_allows_it(client: TestClient) -> None:
    fid = _function(client, ["red"])
    annotator = {"Authorization": f"Bearer {make_key(client, ['annotate'], fid)}"}
    body = {"data": _image(), "annotation": {"labelName": "green"}}
    created = client.post(f"/v1/functions/{fid}/samples", json=body, headers=annotator)
    assert created.status_code == 201
    nyckel = {"data": _image(1), "annotation": {"labelName": "blue"}}
    assert client.post(f"{N}/{fid}/samples", json=nyckel, headers=annotator).status_code == 200
    assert _labels(client, fid) == ["red", "green", "blue"]

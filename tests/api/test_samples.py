from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from tests.conftest import BLUE, RED, data_uri, png_bytes

# Runs on SQLite and on a fresh PostgreSQL database (tests/databases.py).
pytestmark = pytest.mark.databases


def _function(client: TestClient) -> str:
    return client.post("/v1/functions", json={"name": "f", "labels": ["red", "blue"]}).json()["id"]


def test_json_and_multipart_samples(client: TestClient) -> None:
    fid = _function(client)
    body = {"data": data_uri(png_bytes(RED)), "annotation": {"labelName": "red"}}
    created = client.post(f"/v1/functions/{fid}/samples", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["annotation"]["labelName"] == "red"

    upload = client.post(
        f"/v1/functions/{fid}/samples",
        files={"file": ("b.png", png_bytes(BLUE), "image/png")},
        data={"labelName": "blue"},
    )
    assert upload.status_code == 201, upload.text
    assert upload.json()["annotation"]["labelName"] == "blue"

    unlabelled = client.post(
        f"/v1/functions/{fid}/samples", json={"data": data_uri(png_bytes(BLUE, seed=3))}
    )
    sid = unlabelled.json()["id"]
    assert unlabelled.json()["annotation"] is None

    page = client.get(f"/v1/functions/{fid}/samples", params={"annotated": "false"}).json()
    assert page["count"] == 1 and page["data"][0]["id"] == sid
    page = client.get(f"/v1/functions/{fid}/samples", params={"startIndex": 1, "count": 1}).json()
    assert page["count"] == 3 and len(page["data"]) == 1

    put = client.put(f"/v1/functions/{fid}/samples/{sid}/annotation", json={"labelName": "teal"})
    assert put.status_code == 200 and put.json()["annotation"]["labelName"] == "teal"
    labels = [lab["name"] for lab in client.get(f"/v1/functions/{fid}/labels").json()["data"]]
    assert "teal" in labels

    image = client.get(f"/v1/functions/{fid}/samples/{sid}/image")
    assert image.status_code == 200 and image.content == png_bytes(BLUE, seed=3)
    assert client.delete(f"/v1/functions/{fid}/samples/{sid}").status_code == 204
    assert client.get(f"/v1/functions/{fid}/samples/{sid}").status_code == 404


def test_external_id_makes_retries_idempotent(client: TestClient) -> None:
    fid = _function(client)
    body = {
        "data": data_uri(png_bytes(RED)),
        "annotation": {"labelName": "red"},
        "externalId": "a-1",
    }
    first = client.post(f"/v1/functions/{fid}/samples", json=body)
    again = client.post(f"/v1/functions/{fid}/samples", json=body)
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    other = {**body, "data": data_uri(png_bytes(BLUE))}
    conflict = client.post(f"/v1/functions/{fid}/samples", json=other)
    assert conflict.status_code == 409 and "a-1" in conflict.json()["message"]
    assert client.get(f"/v1/functions/{fid}/samples").json()["count"] == 1


def test_idempotency_key_header_makes_retries_idempotent(client: TestClient) -> None:
    fid = _function(client)
    url = f"/v1/functions/{fid}/samples"
    image = png_bytes(RED, seed=5)
    body = {"data": data_uri(image), "annotation": {"labelName": "red"}}
    key = {"Idempotency-Key": "upload-7f3a"}

    # Retries racing each other (a client that timed out and retried): one sample.
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: client.post(url, json=body, headers=key), range(4)))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    first = answers[0].json()
    assert first["externalId"] == "upload-7f3a"

    # The same content as multipart is the same payload.
    files = {"file": ("x.png", image, "image/png")}
    again = client.post(url, files=files, data={"labelName": "red"}, headers=key)
    assert again.status_code == 200 and again.json()["id"] == first["id"]

    for changed in ({**body, "data": data_uri(png_bytes(BLUE))}, {**body, "annotation": None}):
        conflict = client.post(url, json=changed, headers=key)
        assert conflict.status_code == 409 and conflict.json()["message"]
    both = client.post(url, json={**body, "externalId": "other"}, headers=key)
    assert both.status_code == 422 and "Idempotency-Key" in both.json()["message"]
    same = client.post(url, json={**body, "externalId": "upload-7f3a"}, headers=key)
    assert same.status_code == 200 and same.json()["id"] == first["id"]
    assert client.get(url).json()["count"] == 1


def test_bad_data_field(client: TestClient) -> None:
    fid = _function(client)
    for data, status in [
        ("not a uri", 400),
        ("data:image/png;base64,@@@", 400),
        ("data:image/png,plain", 400),
        ("ftp://example.invalid/x.png", 400),
    ]:
        response = client.post(f"/v1/functions/{fid}/samples", json={"data": data})
        assert response.status_code == status, (data, response.text)
        assert response.json()["message"]
    assert (
        client.post(
            f"/v1/functions/{fid}/samples",
            content=b"{",
            headers={"content-type": "application/json"},
        ).status_code
        == 400
    )
    assert (
        client.post(
            f"/v1/functions/{fid}/samples", content=b"x", headers={"content-type": "text/plain"}
        ).status_code
        == 415
    )
    assert (
        client.post(f"/v1/functions/{fid}/samples", files={"other": ("a", b"x")}).status_code == 400
    )
    assert (
        client.post(
            "/v1/functions/function_nope/samples", json={"data": data_uri(png_bytes(RED))}
        ).status_code
        == 404
    )
    assert client.get(f"/v1/functions/{fid}/samples").json()["count"] == 0

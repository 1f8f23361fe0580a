import pytest
from fastapi.testclient import TestClient

from service.settings import Settings
from tests.conftest import add_colour_samples

# Runs on SQLite and on a fresh PostgreSQL database (tests/databases.py).
pytestmark = pytest.mark.databases


def test_function_crud_and_labels(client: TestClient) -> None:
    created = client.post("/v1/functions", json={"name": "IsRed", "labels": ["red", "blue"]})
    assert created.status_code == 201, created.text
    fn = created.json()
    assert fn["name"] == "IsRed"
    assert fn["backbone"] == "tiny-clip"
    # tiny-clip has a text tower: labels alone deploy the zero-shot version 0
    assert fn["labelCount"] == 2 and fn["deployedVersion"] == 0

    listed = client.get("/v1/functions").json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == fn["id"]

    label = client.post(f"/v1/functions/{fn['id']}/labels", json={"name": "green"})
    assert label.status_code == 201
    dup = client.post(f"/v1/functions/{fn['id']}/labels", json={"name": "green"})
    assert dup.status_code == 409 and "already exists" in dup.json()["message"]
    names = [lab["name"] for lab in client.get(f"/v1/functions/{fn['id']}/labels").json()["data"]]
    assert names == ["red", "blue", "green"]

    assert client.delete(f"/v1/functions/{fn['id']}").status_code == 204
    missing = client.get(f"/v1/functions/{fn['id']}")
    assert missing.status_code == 404 and fn["id"] in missing.json()["message"]


def test_delete_function_removes_blobs_and_artifacts(
    client: TestClient, settings: Settings
) -> None:
    fn = client.post("/v1/functions", json={"name": "f"}).json()
    add_colour_samples(client, fn["id"], per_label=3)
    assert client.post(f"/v1/functions/{fn['id']}/train").status_code == 200
    blobs = [p for p in (settings.data_dir / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 6
    assert client.delete(f"/v1/functions/{fn['id']}").status_code == 204
    assert not [p for p in (settings.data_dir / "blobs").rglob("*") if p.is_file()]
    assert not (settings.data_dir / "models" / fn["id"]).exists()


def test_invalid_function_bodies_are_422(client: TestClient) -> None:
    assert client.post("/v1/functions", json={}).status_code == 422
    assert client.post("/v1/functions", json={"name": ""}).status_code == 422
    bad = client.post("/v1/functions", json={"name": "x", "labels": ["a", "a"]})
    assert bad.status_code == 422 and "unique" in bad.json()["message"]
    unknown = client.post("/v1/functions", json={"name": "x", "backbone": "nope"})
    assert unknown.status_code in (422, 503) and unknown.json()["message"]
    assert client.get("/v1/functions").json()["count"] == 0

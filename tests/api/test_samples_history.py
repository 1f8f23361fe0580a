"""The label history of samples: every change through the sample API names who and through what,
a non-admin key cannot name someone else, and the history outlives the sample and the key."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.test_auth import bearer
from tests.conftest import BLUE, RED, data_uri, png_bytes

pytestmark = pytest.mark.databases


def _function(client: TestClient, name: str = "f") -> str:
    body = {"name": name, "labels": ["red", "blue"]}
    return str(client.post("/v1/functions", json=body).json()["id"])


def _key(client: TestClient, fid: str | None = None, **body: Any) -> tuple[dict[str, str], str]:
    """A new key's headers and id (annotate scope unless told)."""
    created = client.post("/v1/keys", json={"scopes": ["annotate"], "functionId": fid, **body})
    assert created.status_code == 201, created.text
    return bearer(created.json()["key"]), created.json()["id"]


def _history(client: TestClient, fid: str, sid: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/functions/{fid}/samples/{sid}/history")
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["count"] == len(page["data"])
    return list(page["data"])


def _steps(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["labelBefore"], e["labelAfter"], e["actors"], e["via"]) for e in events]


def _create(
    client: TestClient, fid: str, seed: int = 0, h: dict[str, str] | None = None, **body: Any
) -> Any:
    """POST a red sample with ``body``'s fields, as the key ``h`` (default: the admin key)."""
    payload = {"data": data_uri(png_bytes(RED, seed=seed)), **body}
    return client.post(f"/v1/functions/{fid}/samples", json=payload, headers=h)


def test_every_sample_api_path_records_who_and_how(client: TestClient) -> None:
    fid = _function(client)
    ana, _ = _key(client, fid, reviewer="  ana ", name="ana's laptop")
    created = client.post(
        f"/v1/functions/{fid}/samples",
        json={"data": data_uri(png_bytes(RED)), "annotation": {"labelName": "red"}},
        headers=ana,
    )
    assert created.status_code == 201, created.text
    assert created.json()["annotatedBy"] == "ana"  # the key's reviewer, trimmed
    sid = created.json()["id"]
    path = f"/v1/functions/{fid}/samples/{sid}"
    assert client.put(f"{path}/annotation", json={"labelName": "blue"}, headers=ana).is_success
    same = client.put(f"{path}/annotation", json={"labelName": "blue"}, headers=ana)
    assert same.status_code == 200  # the same label again: no change, no event
    assert client.delete(f"{path}/annotation", headers=ana).json()["annotatedBy"] is None
    # an admin key may name the person (an import's original reviewer); else it is "admin"
    named = client.put(f"{path}/annotation", json={"labelName": "red", "annotatedBy": "bo"})
    assert named.json()["annotatedBy"] == "bo"
    assert client.put(f"{path}/annotation", json={"labelName": "blue"}).is_success

    events = _history(client, fid, sid)
    assert _steps(events) == [
        (None, "red", ["ana"], "sample_api"),
        ("red", "blue", ["ana"], "sample_api"),
        ("blue", None, ["ana"], "sample_api"),
        (None, "red", ["bo"], "sample_api"),
        ("red", "blue", ["admin"], "sample_api"),
    ]
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    assert all(e["reviewItemId"] is None for e in events)
    assert client.get(path).json()["annotatedBy"] == "admin"

    # a key without a reviewer labels as its name, a key without either as its id
    named_key, _ = _key(client, fid, name="script")
    bare_key, bare_id = _key(client, fid)
    for headers, seed in ((named_key, 1), (bare_key, 2)):
        body = {"data": data_uri(png_bytes(BLUE, seed=seed)), "annotation": {"labelName": "blue"}}
        response = client.post(f"/v1/functions/{fid}/samples", json=body, headers=headers)
        assert response.status_code == 201, response.text
    by = {s["annotatedBy"] for s in client.get(f"/v1/functions/{fid}/samples").json()["data"]}
    assert by == {"admin", "script", bare_id}


def test_an_unlabelled_upload_has_an_empty_history_and_retries_add_nothing(
    client: TestClient,
) -> None:
    fid = _function(client)
    unlabelled = _create(client, fid)
    assert _history(client, fid, unlabelled.json()["id"]) == []
    body: dict[str, Any] = {"annotation": {"labelName": "red"}, "externalId": "x-1"}
    first = _create(client, fid, seed=1, **body)
    again = _create(client, fid, seed=1, **body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert len(_history(client, fid, first.json()["id"])) == 1


def test_an_import_says_so_and_an_admin_key_keeps_the_original_reviewer(
    client: TestClient,
) -> None:
    fid = _function(client)
    body: dict[str, Any] = {
        "annotation": {"labelName": "red", "annotatedBy": "carla"},
        "via": "import",
    }
    imported = _create(client, fid, **body)
    assert imported.status_code == 201, imported.text
    assert imported.json()["annotatedBy"] == "carla"
    assert _steps(_history(client, fid, imported.json()["id"])) == [
        (None, "red", ["carla"], "import")
    ]
    # multipart carries the same fields
    upload = client.post(
        f"/v1/functions/{fid}/samples",
        files={"file": ("b.png", png_bytes(BLUE), "image/png")},
        data={"labelName": "blue", "annotatedBy": "dan", "via": "import"},
    )
    assert upload.status_code == 201, upload.text
    assert _steps(_history(client, fid, upload.json()["id"])) == [(None, "blue", ["dan"], "import")]
    # an annotate key imports as itself
    ana, _ = _key(client, fid, reviewer="ana")
    own = _create(client, fid, seed=5, h=ana, annotation={"labelName": "red"}, via="import")
    assert _steps(_history(client, fid, own.json()["id"])) == [(None, "red", ["ana"], "import")]


@pytest.mark.parametrize(
    "body",
    [
        {"via": "review"},  # only imports name their path
        {"via": "sample_api"},
        {"annotation": {"labelName": "red", "annotatedBy": "a\nb"}},
        {"annotation": {"labelName": "red", "annotatedBy": "   "}},
        {"annotation": {"labelName": "red", "annotatedBy": "x" * 201}},
        {"annotation": {"labelName": "red", "annotatedBy": "\u202eevil"}},
    ],
)
def test_bad_via_or_annotated_by_is_a_422_that_writes_nothing(
    client: TestClient, body: dict[str, Any]
) -> None:
    fid = _function(client)
    response = _create(client, fid, **body)
    assert response.status_code == 422, response.text
    assert client.get(f"/v1/functions/{fid}/samples").json()["count"] == 0


def test_a_non_admin_key_cannot_name_someone_else(client: TestClient) -> None:
    fid = _function(client)
    ana, _ = _key(client, fid, reviewer="ana")
    labelled = {"labelName": "red", "annotatedBy": "bo"}
    refused = client.post(
        f"/v1/functions/{fid}/samples",
        json={"data": data_uri(png_bytes(RED)), "annotation": labelled},
        headers=ana,
    )
    assert refused.status_code == 403
    assert "admin" in refused.json()["message"] and "'ana'" in refused.json()["message"]
    assert client.get(f"/v1/functions/{fid}/samples").json()["count"] == 0

    sid = _create(client, fid, annotation={"labelName": "blue"}).json()["id"]
    path = f"/v1/functions/{fid}/samples/{sid}"
    before = _history(client, fid, sid)
    refused = client.put(f"{path}/annotation", json=labelled, headers=ana)
    assert refused.status_code == 403
    assert client.get(path).json()["annotation"]["labelName"] == "blue"
    assert _history(client, fid, sid) == before


def test_history_outlives_the_sample_and_the_key(client: TestClient) -> None:
    fid = _function(client)
    ana, ana_id = _key(client, fid, reviewer="ana")
    sid = _create(client, fid, annotation={"labelName": "red"}, h=ana).json()["id"]
    assert client.delete(f"/v1/keys/{ana_id}").status_code == 204
    assert client.delete(f"/v1/functions/{fid}/samples/{sid}").status_code == 204
    assert client.get(f"/v1/functions/{fid}/samples/{sid}").status_code == 404
    assert _steps(_history(client, fid, sid)) == [
        (None, "red", ["ana"], "sample_api"),
        ("red", None, ["admin"], "sample_api"),
    ]
    # an unlabelled sample's deletion changes no label: its (empty) history goes with it
    unlabelled = _create(client, fid, seed=1).json()["id"]
    assert client.delete(f"/v1/functions/{fid}/samples/{unlabelled}").status_code == 204
    missing = client.get(f"/v1/functions/{fid}/samples/{unlabelled}/history")
    assert missing.status_code == 404
    # deleting the function deletes its history with it
    assert client.delete(f"/v1/functions/{fid}").status_code == 204
    assert client.get(f"/v1/functions/{fid}/samples/{sid}/history").status_code == 404


def test_history_is_read_with_annotate_scope_within_the_key_tenant(client: TestClient) -> None:
    fid, other = _function(client, "a"), _function(client, "b")
    sid = _create(client, fid, annotation={"labelName": "red"}).json()["id"]
    path = f"/v1/functions/{fid}/samples/{sid}/history"
    own, _ = _key(client, fid)
    invoke_only, _ = _key(client, fid, scopes=["invoke"])
    elsewhere, _ = _key(client, other)
    assert client.get(path, headers=own).status_code == 200
    assert client.get(path, headers=invoke_only).status_code == 403
    assert client.get(path, headers=elsewhere).status_code == 404  # another tenant: not found
    assert client.get(f"/v1/functions/{other}/samples/{sid}/history").status_code == 404
    assert client.get(f"/v1/functions/{fid}/samples/sample_nope/history").status_code == 404
    assert client.get(f"/v1/functions/function_nope/samples/{sid}/history").status_code == 404

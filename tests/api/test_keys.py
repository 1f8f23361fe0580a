"""Creating keys with a key: never broader (scopes, function) nor less limited than the caller."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.test_auth import bearer


def _key(client: TestClient, **body: object) -> dict[str, str]:
    created = client.post("/v1/keys", json=body)
    assert created.status_code == 201, created.text
    return bearer(created.json()["key"])


def test_a_key_cannot_create_a_broader_key(client: TestClient) -> None:
    fa = client.post("/v1/functions", json={"name": "a"}).json()["id"]
    fb = client.post("/v1/functions", json={"name": "b"}).json()["id"]
    limited = _key(client, functionId=fa, scopes=["admin", "invoke"], rateLimitPerMinute=50)

    def create(**body: object) -> tuple[int, str]:
        response = client.post("/v1/keys", json=body, headers=limited)
        return response.status_code, response.json().get("message", "")

    # the case: all scopes and no limit (its limit is high enough for this test)
    status, message = create(functionId=fa, scopes=["invoke", "annotate", "admin"])
    assert status == 403
    assert "['annotate']" in message and "no rate limit" in message
    # each dimension alone
    status, message = create(functionId=fa, scopes=["annotate"], rateLimitPerMinute=50)
    assert (status, "['annotate']" in message) == (403, True)
    status, message = create(functionId=fa, scopes=["invoke"])
    assert (status, "no rate limit" in message) == (403, True)
    status, message = create(functionId=fa, scopes=["invoke"], rateLimitPerMinute=51)
    assert (status, "above the calling key's 50" in message) == (403, True)
    assert create(scopes=["invoke"], rateLimitPerMinute=50)[0] == 403  # every function
    assert create(functionId=fb, scopes=["invoke"], rateLimitPerMinute=50)[0] == 404  # not its own
    # as narrow or narrower: allowed, and the new key is what was asked for
    assert create(functionId=fa, scopes=["admin", "invoke"], rateLimitPerMinute=50)[0] == 201
    status, _ = create(functionId=fa, scopes=["invoke"], rateLimitPerMinute=1)
    assert status == 201
    assert {k["rateLimitPerMinute"] for k in client.get("/v1/keys").json()["data"]} >= {50, 1}


def test_an_unlimited_global_key_is_bounded_by_its_scopes_only(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
    admin_only = _key(client, scopes=["admin"])
    refused = client.post("/v1/keys", json={"scopes": ["invoke"]}, headers=admin_only)
    assert refused.status_code == 403 and "['invoke']" in refused.json()["message"]
    for body in (
        {"scopes": ["admin"]},
        {"scopes": ["admin"], "functionId": fid, "rateLimitPerMinute": 1_000_000},
    ):
        assert client.post("/v1/keys", json=body, headers=admin_only).status_code == 201, body
    # the admin key is unrestricted
    every = {"scopes": ["invoke", "annotate", "admin"]}
    assert client.post("/v1/keys", json=every).status_code == 201


def test_a_key_carries_a_reviewer_name(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
    body = {"scopes": ["annotate"], "functionId": fid, "name": "laptop"}
    created = client.post("/v1/keys", json={**body, "reviewer": "  Zoë Ng "})
    assert created.status_code == 201, created.text
    assert created.json()["reviewer"] == "Zoë Ng"  # trimmed (and NFC)
    plain = client.post("/v1/keys", json=body).json()
    assert plain["reviewer"] is None
    listed = {k["id"]: k["reviewer"] for k in client.get("/v1/keys").json()["data"]}
    assert listed[created.json()["id"]] == "Zoë Ng" and listed[plain["id"]] is None


def test_a_bad_reviewer_name_is_a_422_that_creates_no_key(client: TestClient) -> None:
    before = client.get("/v1/keys").json()["count"]
    for reviewer in ("", "   ", "ana\nbo", "\x1b[31mana", "a\u200bb", "x" * 201, 7):
        response = client.post("/v1/keys", json={"scopes": ["annotate"], "reviewer": reviewer})
        assert response.status_code == 422, (reviewer, response.text)
    assert client.get("/v1/keys").json()["count"] == before
    longest = client.post("/v1/keys", json={"scopes": ["annotate"], "reviewer": "x" * 200})
    assert longest.status_code == 201

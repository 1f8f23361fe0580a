"""API keys: 401 / 403 / 404 rules, tenant isolation, key management and the admin key."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import inspect
import logging
import re
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

import service.auth
from api.app import create_app
from service.auth import Authenticator
from service.ratelimit import RateLimiter
from service.settings import Settings
from store import ApiKey, session_scope
from tests.conftest import add_colour_samples, data_uri, png_bytes

MISSING_FUNCTION = "function_00000000000000000000"
OPEN_PATHS = {"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/review"}
# Where a Nyckel client exchanges its key for a token: the key is in the form, not a header.
OPEN_PATHS.add("/nyckel/connect/token")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_key(client: TestClient, scopes: list[str], function_id: str | None = None) -> str:
    body: dict = {"scopes": scopes, "name": "test"}
    if function_id is not None:
        body["functionId"] = function_id
    response = client.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    return response.json()["key"]


def anonymous(client: TestClient) -> TestClient:
    """A client of the same running app that sends no key."""
    return TestClient(client.app)


def test_missing_or_invalid_key_is_401_and_open_pages_stay_open(client: TestClient) -> None:
    anon = anonymous(client)
    fid = client.post("/v1/functions", json={"name": "f", "labels": ["red"]}).json()["id"]
    real = make_key(client, ["invoke", "annotate", "admin"])
    forged = real[:-4] + ("0000" if not real.endswith("0000") else "1111")
    for headers in ({}, bearer("nope"), bearer("wn_abc_def"), bearer(forged), {"X-Key": real}):
        response = anon.get(f"/v1/functions/{fid}", headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["message"]
    assert "Authorization: Bearer" in anon.get("/v1/functions").json()["message"]
    assert anon.get(f"/v1/functions/{fid}", headers=bearer(real)).status_code == 200
    for path in ("/health", "/docs", "/openapi.json", "/review"):
        assert anon.get(path).status_code == 200, path


def test_every_api_route_needs_a_key(client: TestClient) -> None:
    """Every route in the OpenAPI schema but /health: a route added without a key fails here."""
    anon = anonymous(client)
    values = {"function_id": MISSING_FUNCTION, "version": "1"}
    checked = 0
    for template, operations in anon.get("/openapi.json").json()["paths"].items():
        if template in OPEN_PATHS:
            continue
        path = re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), "x_1"), template)
        for method in operations:
            response = anon.request(method.upper(), path)
            assert response.status_code == 401, (method, template, response.status_code)
            checked += 1
    assert checked >= 25


ROUTE_SCOPES = [
    ("POST", "/v1/functions/{f}/labels", "admin"),
    ("DELETE", "/v1/functions/{f}", "admin"),
    ("POST", "/v1/functions/{f}/samples", "annotate"),
    ("GET", "/v1/functions/{f}/samples", "annotate"),
    ("GET", "/v1/functions/{f}/samples/s_1", "annotate"),
    ("GET", "/v1/functions/{f}/samples/s_1/image", "annotate"),
    ("PUT", "/v1/functions/{f}/samples/s_1/annotation", "annotate"),
    ("DELETE", "/v1/functions/{f}/samples/s_1", "admin"),
    ("POST", "/v1/functions/{f}/invoke", "invoke"),
    ("POST", "/v1/functions/{f}/invoke/batch", "invoke"),
    ("POST", "/v1/functions/{f}/search", "annotate"),
    ("GET", "/v1/functions/{f}/samples/s_1/similar", "annotate"),
    ("GET", "/v1/functions/{f}/review/i_1/similar", "annotate"),
    ("GET", "/v1/functions/{f}/capture-policy", "admin"),
    ("PUT", "/v1/functions/{f}/capture-policy", "admin"),
    ("GET", "/v1/functions/{f}/review", "annotate"),
    ("GET", "/v1/functions/{f}/review/counts", "annotate"),
    ("POST", "/v1/functions/{f}/review/annotate", "annotate"),
    ("POST", "/v1/functions/{f}/review/i_1/annotate", "annotate"),
    ("POST", "/v1/functions/{f}/review/i_1/skip", "annotate"),
    ("POST", "/v1/functions/{f}/review/i_1/discard", "annotate"),
    ("POST", "/v1/functions/{f}/review/i_1/novel", "annotate"),
    ("GET", "/v1/functions/{f}/proposals", "annotate"),
    ("POST", "/v1/functions/{f}/proposals/p_1/accept", "annotate"),
    ("POST", "/v1/functions/{f}/proposals/p_1/dismiss", "annotate"),
    ("GET", "/v1/review/i_1/image", "annotate"),
    ("POST", "/v1/functions/{f}/train", "admin"),
    ("GET", "/v1/functions/{f}/models", "admin"),
    ("GET", "/v1/functions/{f}/metrics", "admin"),
    ("GET", "/v1/functions/{f}/dashboard", "admin"),
    ("GET", "/v1/functions/{f}/charts/labels.png", "admin"),
    ("POST", "/v1/functions", "admin"),
    ("GET", "/v1/keys", "admin"),
    ("POST", "/v1/keys", "admin"),
    ("DELETE", "/v1/keys/key_1", "admin"),
    ("PUT", "/v1/functions/{f}/labels/label_1", "admin"),
    ("DELETE", "/v1/functions/{f}/labels/label_1", "admin"),
    ("DELETE", "/v1/functions/{f}/samples/s_1/annotation", "annotate"),
    # the Nyckel-compatible API: the same scopes for the same use cases
    ("POST", "/nyckel/v1/functions", "admin"),
    ("DELETE", "/nyckel/v1/functions/{f}", "admin"),
    ("POST", "/nyckel/v1/functions/{f}/labels", "admin"),
    ("PUT", "/nyckel/v1/functions/{f}/labels/label_1", "admin"),
    ("DELETE", "/nyckel/v1/functions/{f}/labels/label_1", "admin"),
    ("POST", "/nyckel/v1/functions/{f}/samples", "annotate"),
    ("GET", "/nyckel/v1/functions/{f}/samples", "annotate"),
    ("GET", "/nyckel/v1/functions/{f}/samples/s_1", "annotate"),
    ("PUT", "/nyckel/v1/functions/{f}/samples/s_1/annotation", "annotate"),
    ("DELETE", "/nyckel/v1/functions/{f}/samples/s_1/annotation", "annotate"),
    ("DELETE", "/nyckel/v1/functions/{f}/samples/s_1", "admin"),
    ("POST", "/nyckel/v1/functions/{f}/invoke", "invoke"),
]


def test_wrong_scope_is_403_and_the_right_scope_passes(client: TestClient) -> None:
    """Global keys on a missing function: the scope is checked first (403), then existence."""
    keys = {scope: make_key(client, [scope]) for scope in ("invoke", "annotate", "admin")}
    for method, template, needed in ROUTE_SCOPES:
        path = template.format(f=MISSING_FUNCTION)
        for scope, key in keys.items():
            status = client.request(method, path, headers=bearer(key)).status_code
            if scope == needed:
                assert status not in (401, 403), (method, path, scope, status)
            else:
                assert status == 403, (method, path, scope, status)
    # Reading a function and its labels needs a key of any scope.
    fid = client.post("/v1/functions", json={"name": "f", "labels": ["red"]}).json()["id"]
    for key in keys.values():
        assert client.get(f"/v1/functions/{fid}/labels", headers=bearer(key)).status_code == 200
    forbidden = client.get("/v1/keys", headers=bearer(keys["invoke"]))
    assert "admin" in forbidden.json()["message"]
    assert "insufficient_scope" in forbidden.headers["WWW-Authenticate"]


def _tenant(client: TestClient, name: str) -> dict[str, str]:
    """A trained function with one sample and one captured review item."""
    fid = client.post("/v1/functions", json={"name": name}).json()["id"]
    add_colour_samples(client, fid, per_label=3)
    assert client.post(f"/v1/functions/{fid}/train").status_code == 200
    client.put(f"/v1/functions/{fid}/capture-policy", json={"randomRate": 1.0})
    probe = {"data": data_uri(png_bytes((200, 120, 30), seed=77))}
    item = client.post(f"/v1/functions/{fid}/invoke", json=probe).json()["capture"]["itemId"]
    sample = client.get(f"/v1/functions/{fid}/samples").json()["data"][0]["id"]
    return {"function": fid, "sample": sample, "item": item}


def test_another_tenants_things_look_missing(client: TestClient) -> None:
    a, b = _tenant(client, "a"), _tenant(client, "b")
    key_a = bearer(make_key(client, ["invoke", "annotate", "admin"], a["function"]))
    fa, fb = a["function"], b["function"]

    def same_as_missing(path: str, real_id: str, fake_id: str, method: str = "GET", **kw) -> None:
        theirs = client.request(method, path, headers=key_a, **kw)
        missing = client.request(method, path.replace(real_id, fake_id), headers=key_a, **kw)
        assert theirs.status_code == missing.status_code == 404, (path, theirs.text)
        assert theirs.json()["message"].replace(real_id, fake_id) == missing.json()["message"]

    fake_sample, fake_item = "sample_00000000000000000000", "item_00000000000000000000"
    same_as_missing(f"/v1/functions/{fb}", fb, MISSING_FUNCTION)
    same_as_missing(f"/v1/functions/{fb}/samples", fb, MISSING_FUNCTION)
    same_as_missing(f"/v1/functions/{fb}/samples/{b['sample']}/image", fb, MISSING_FUNCTION)
    same_as_missing(f"/v1/functions/{fb}/models", fb, MISSING_FUNCTION)
    same_as_missing(f"/v1/functions/{fb}", fb, MISSING_FUNCTION, "DELETE")
    same_as_missing(f"/v1/functions/{fb}/invoke", fb, MISSING_FUNCTION, "POST", json={"data": "x"})
    same_as_missing(f"/v1/functions/{fa}/samples/{b['sample']}", b["sample"], fake_sample)
    same_as_missing(f"/v1/functions/{fa}/samples/{b['sample']}", b["sample"], fake_sample, "DELETE")
    same_as_missing(f"/v1/review/{b['item']}/image", b["item"], fake_item)
    same_as_missing(
        f"/v1/functions/{fa}/review/{b['item']}/annotate",
        b["item"],
        fake_item,
        "POST",
        json={"labelName": "red"},
    )
    for_b, for_missing = (
        client.post("/v1/keys", json={"functionId": f, "scopes": ["invoke"]}, headers=key_a)
        for f in (fb, MISSING_FUNCTION)
    )
    assert for_b.status_code == for_missing.status_code == 404
    assert for_b.json()["message"].replace(fb, MISSING_FUNCTION) == for_missing.json()["message"]

    # Nothing of b's changed, and a's own things work with a's key.
    assert client.get(f"/v1/functions/{fb}/samples/{b['sample']}").status_code == 200
    assert client.get(f"/v1/functions/{fb}/review").json()["count"] == 1
    assert client.get(f"/v1/review/{a['item']}/image", headers=key_a).status_code == 200
    listed = client.get("/v1/functions", headers=key_a).json()
    assert [f["id"] for f in listed["data"]] == [fa] and listed["count"] == 1
    assert {f["id"] for f in client.get("/v1/functions").json()["data"]} == {fa, fb}
    created = client.post("/v1/functions", json={"name": "c"}, headers=key_a)
    assert created.status_code == 403


def test_function_scoped_admin_manages_only_its_own_keys(client: TestClient) -> None:
    fa = client.post("/v1/functions", json={"name": "a"}).json()["id"]
    fb = client.post("/v1/functions", json={"name": "b"}).json()["id"]
    key_a = bearer(make_key(client, ["admin", "invoke"], fa))
    b_key_id = client.post("/v1/keys", json={"functionId": fb, "scopes": ["invoke"]}).json()["id"]

    own = client.post("/v1/keys", json={"functionId": fa, "scopes": ["invoke"]}, headers=key_a)
    assert own.status_code == 201 and own.json()["functionId"] == fa
    assert client.post("/v1/keys", json={"scopes": ["invoke"]}, headers=key_a).status_code == 403
    listed = client.get("/v1/keys", headers=key_a).json()["data"]
    assert listed and {k["functionId"] for k in listed} == {fa}
    assert client.delete(f"/v1/keys/{b_key_id}", headers=key_a).status_code == 404
    assert b_key_id in {k["id"] for k in client.get("/v1/keys").json()["data"]}
    assert client.delete(f"/v1/keys/{own.json()['id']}", headers=key_a).status_code == 204


def test_key_is_shown_once_and_stored_hashed(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
    created = client.post(
        "/v1/keys", json={"functionId": fid, "scopes": ["annotate", "invoke"], "name": "app"}
    )
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    body = created.json()
    key, digest = body["key"], hashlib.sha256(body["key"].encode()).hexdigest()
    assert key.startswith("wn_") and len(key) > 64
    assert body["functionId"] == fid and body["scopes"] == ["invoke", "annotate"]
    assert body["id"].removeprefix("key_") in key  # the non-secret id is embedded

    listing = client.get("/v1/keys")
    assert listing.status_code == 200
    assert key not in listing.text and digest not in listing.text
    (row,) = [k for k in listing.json()["data"] if k["id"] == body["id"]]
    assert set(row) == {
        "id",
        "name",
        "reviewer",
        "functionId",
        "scopes",
        "rateLimitPerMinute",
        "createdAt",
    }

    with session_scope(client.app.state.runtime.engine) as session:  # type: ignore[attr-defined]
        stored = session.exec(select(ApiKey).where(ApiKey.id == body["id"])).one()
    assert stored.secret_hash == digest and key not in stored.model_dump_json()


def test_invalid_key_requests_are_422(client: TestClient) -> None:
    for body in (
        {"scopes": []},
        {"scopes": ["root"]},
        {"scopes": ["admin"], "rateLimitPerMinute": 0},
    ):
        assert client.post("/v1/keys", json=body).status_code == 422, body
    missing = client.post("/v1/keys", json={"functionId": MISSING_FUNCTION, "scopes": ["invoke"]})
    assert missing.status_code == 404


def test_deleted_key_and_deleted_functions_keys_stop_working(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
    created = client.post("/v1/keys", json={"scopes": ["annotate"]}).json()
    scoped = bearer(make_key(client, ["annotate"], fid))
    key = bearer(created["key"])
    assert client.get(f"/v1/functions/{fid}/samples", headers=key).status_code == 200
    assert client.delete(f"/v1/keys/{created['id']}").status_code == 204
    assert client.get(f"/v1/functions/{fid}/samples", headers=key).status_code == 401
    assert client.delete(f"/v1/keys/{created['id']}").status_code == 404

    assert client.get(f"/v1/functions/{fid}/samples", headers=scoped).status_code == 200
    assert client.delete(f"/v1/functions/{fid}").status_code == 204
    assert client.get("/v1/functions", headers=scoped).status_code == 401
    assert all(k["functionId"] != fid for k in client.get("/v1/keys").json()["data"])


def _admin_key_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "admin key" in r.getMessage()
    ]


def test_generated_admin_key_is_private_and_survives_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path / "data", backbone="tiny-clip", retrain_interval=0)
    key_file = tmp_path / "data" / "admin-key"
    with caplog.at_level(logging.INFO, logger="winnow"), TestClient(create_app(settings)) as http:
        key = key_file.read_text().strip()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        (warning,) = _admin_key_warnings(caplog)
        assert key in warning
        assert http.get("/v1/functions").status_code == 401
        assert http.get("/v1/functions", headers=bearer(key)).status_code == 200
        created = http.post("/v1/keys", json={"scopes": ["admin"]}, headers=bearer(key))
        assert created.status_code == 201
        engine = http.app.state.runtime.engine  # type: ignore[attr-defined]
        with session_scope(engine) as session:
            rows = session.exec(select(ApiKey)).all()
        assert all(key not in row.model_dump_json() for row in rows)
        builtin = http.get("/v1/keys", headers=bearer(key)).json()["data"][0]
        assert builtin["id"] == "key_admin"
        assert http.delete("/v1/keys/key_admin", headers=bearer(key)).status_code == 409

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="winnow"), TestClient(create_app(settings)) as http:
        assert key_file.read_text().strip() == key  # not regenerated
        assert _admin_key_warnings(caplog) == []  # shown once only
        assert http.get("/v1/functions", headers=bearer(key)).status_code == 200
        other = bearer(created.json()["key"])
        assert http.get("/v1/functions", headers=other).status_code == 200

    # An admin_key setting replaces the generated key while it is set.
    configured = dataclasses.replace(settings, admin_key="chosen-admin-key")
    with TestClient(create_app(configured)) as http:
        assert http.get("/v1/functions", headers=bearer(key)).status_code == 401
        assert http.get("/v1/functions", headers=bearer("chosen-admin-key")).status_code == 200


def test_keys_are_compared_in_constant_time(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = make_key(client, ["annotate"])
    digest = hashlib.sha256(key.encode()).hexdigest()
    compared: list[tuple[str, str]] = []
    original = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(service.auth.hmac, "compare_digest", spy)
    assert client.get("/v1/functions", headers=bearer(key)).status_code == 200
    assert (digest, digest) in compared
    source = inspect.getsource(Authenticator.authenticate)
    assert "hmac.compare_digest" in source and "secret_hash ==" not in source
    assert "== self._admin_hash" not in source


def test_rate_limited_key_gets_429_with_retry_after(client: TestClient) -> None:
    created = client.post("/v1/keys", json={"scopes": ["annotate"], "rateLimitPerMinute": 2})
    assert created.json()["rateLimitPerMinute"] == 2
    key = bearer(created.json()["key"])
    assert [client.get("/v1/functions", headers=key).status_code for _ in range(2)] == [200, 200]
    limited = client.get("/v1/functions", headers=key)
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 30
    assert client.get("/v1/functions").status_code == 200  # other keys are not affected


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert limiter.take("k", 60) is None
    for _ in range(59):
        assert limiter.take("k", 60) is None
    wait = limiter.take("k", 60)
    assert wait is not None and wait == pytest.approx(1.0)
    now[0] += 1.0
    assert limiter.take("k", 60) is None
    assert limiter.take("other", 60) is None

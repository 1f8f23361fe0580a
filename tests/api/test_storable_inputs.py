"""Values a database cannot hold are a 4xx with a message on every backend, never a 500.

Found by fuzzing (tests/api/test_schemathesis.py) and by running the API on PostgreSQL: NUL
characters (PostgreSQL text cannot contain them, not even in a comparison), lone surrogates
(not UTF-8), and integers past 64 bits (SQLite and PostgreSQL both refuse to bind them).
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.conftest import RED, data_uri, png_bytes

pytestmark = pytest.mark.databases

HUGE = "99999999999999999999"
CASES = [
    ("get", "/v1/functions/a%00b", None, 400),
    ("get", "/v1/functions/{fid}/review?status=pending%00", None, 400),
    ("get", "/v1/functions/{fid}/samples?startIndex=" + HUGE, None, 422),
    ("get", "/v1/functions/{fid}/samples?startIndex=9223372036854775808", None, 422),
    ("get", "/v1/functions/{fid}/review?startIndex=" + HUGE, None, 422),
    ("post", "/v1/functions", {"name": "a\x00b"}, 422),
    ("post", "/v1/functions", {"name": "\ud800"}, 422),
    ("post", "/v1/functions", {"name": "ok", "labels": ["fine", "bad\x00"]}, 422),
    ("post", "/v1/functions/{fid}/labels", {"name": "x", "description": "\x00"}, 422),
    ("put", "/v1/functions/{fid}/samples/{sid}/annotation", {"labelName": "\x00"}, 422),
    ("post", "/v1/functions/{fid}/samples", {"data": "IMAGE", "externalId": "\x00"}, 422),
    (
        "post",
        "/v1/functions/{fid}/samples",
        {"data": "IMAGE", "annotation": {"labelName": "\udfff"}},
        422,
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), CASES)
def test_unstorable_values_are_client_errors(
    client: TestClient, method: str, path: str, body: dict[str, object] | None, status: int
) -> None:
    fid = client.post("/v1/functions", json={"name": "f", "labels": ["red"]}).json()["id"]
    image = data_uri(png_bytes(RED))
    sample = client.post(f"/v1/functions/{fid}/samples", json={"data": image}).json()["id"]
    if body is not None and body.get("data") == "IMAGE":
        body = {**body, "data": image}
    url = path.format(fid=fid, sid=sample)
    # json.dumps escapes a lone surrogate as \udfff, which a JSON parser turns back into one.
    content = json.dumps(body) if body is not None else None
    headers = {"content-type": "application/json"}
    response = client.request(method, url, content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["message"]
    # Nothing was written, and the service still answers.
    assert client.get(f"/v1/functions/{fid}/samples").json()["count"] == 1
    assert client.get("/v1/functions").json()["count"] == 1

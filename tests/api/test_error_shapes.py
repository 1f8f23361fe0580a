"""Every error the service makes, framework-made ones included, is JSON ``{message}`` with the
security headers: deep JSON (400), oversized bodies (413), unknown routes and methods (404, 405)
and unhandled exceptions (500, the keep-alive connection kept)."""

from __future__ import annotations

import json
import logging
import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import body_guard
from api.app import create_app
from api.body_guard import MAX_JSON_DEPTH, BodyRefused, JsonNesting
from api.security_headers import ALWAYS, API_POLICY, CSP
from service import functions as function_service
from service.settings import Settings
from tests.api.live import threaded_server
from tests.conftest import AUTH, RED, data_uri, png_bytes


def assert_error(response: Any, status: int, message: str = "") -> dict[str, Any]:
    """``response`` is a ``status`` error shaped as every error must be; returns its body."""
    assert response.status_code == status, (response.request.url, response.text)
    assert response.headers["content-type"] == "application/json", response.headers
    for name, value in {**ALWAYS, CSP: API_POLICY}.items():
        assert response.headers.get(name) == value, (name, response.headers)
    body: dict[str, Any] = response.json()
    assert list(body) == ["message"] and message in body["message"], body
    return body


# deep JSON -------------------------------------------------------------------------------------

JSON = {"content-type": "application/json"}
DEEP_LIST = '{"data": ' + "[" * 1000 + "]" * 1000 + "}"  # 2 KB
DEEP_OBJECT = '{"a":' * 1000 + "1" + "}" * 1000


@pytest.fixture
def function_ids(client: TestClient) -> dict[str, str]:
    """A function of winnow's API and one made through the Nyckel adapter."""
    winnow = client.post("/v1/functions", json={"name": "f"}).json()["id"]
    nyckel = client.post(
        "/nyckel/v1/functions", json={"name": "g", "input": "Image", "output": "Classification"}
    ).json()["id"]
    return {"winnow": winnow, "nyckel": nyckel}


JSON_ROUTES = [
    "/v1/functions/{winnow}/invoke",
    "/v1/functions/{winnow}/invoke/batch",
    "/v1/functions/{winnow}/search",
    "/v1/functions/{winnow}/samples",
    "/v1/functions",
    "/nyckel/v1/functions/{nyckel}/invoke",
    "/nyckel/v1/functions/{nyckel}/samples",
    "/nyckel/v1/functions",
]


@pytest.mark.parametrize("body", [DEEP_LIST, DEEP_OBJECT], ids=["list", "object"])
def test_deep_json_is_a_400_on_every_json_route(
    client: TestClient, function_ids: dict[str, str], body: str
) -> None:
    for route in JSON_ROUTES:
        response = client.post(route.format(**function_ids), content=body, headers=JSON)
        assert_error(response, 400, "JSON nested too deeply")


def test_json_as_deep_as_the_limit_is_parsed(
    client: TestClient, function_ids: dict[str, str]
) -> None:
    url = f"/v1/functions/{function_ids['winnow']}/invoke"
    image = data_uri(png_bytes(RED))
    at_limit = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    response = client.post(url, content=f'{{"data": "{image}", "extra": {at_limit}}}')
    assert_error(response, 422, "extra: Extra inputs are not permitted")
    brackets_in_a_string = {"data": "[{" * 1000}  # text, not nesting
    assert_error(client.post(url, json=brackets_in_a_string), 400, "'data' must be a data URI")
    multipart = client.post(url, files={"file": ("x.png", b"[" * 5000)})  # not JSON: not scanned
    assert "nested" not in multipart.json()["message"]


def feed_bytewise(text: bytes, limit: int) -> int:
    nesting = JsonNesting(limit)
    for i in range(len(text)):
        nesting.feed(text[i : i + 1])
    return nesting.depth


@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "byte-by-byte"])
def test_nesting_skips_strings_and_their_escapes(chunked: bool) -> None:
    text = rb'{"a": "\\", "b": "\"[[[{", "c": [[1, "]]]\\\"]"]], "d": ["\\\\"]}'

    def depth_reached(limit: int) -> int:
        if chunked:
            return feed_bytewise(text, limit)
        nesting = JsonNesting(limit)
        nesting.feed(text)
        return nesting.depth

    assert depth_reached(3) == 0  # { [ [ : three levels, all closed
    with pytest.raises(BodyRefused) as refused:
        depth_reached(2)
    assert refused.value.status_code == 400


def random_json(rng: random.Random, depth: int) -> Any:
    """A value nested ``depth`` levels, its strings full of brackets, quotes and backslashes."""
    text = "".join(rng.choice('[]{}"\\\n\u00e9a,:') for _ in range(rng.randrange(6)))
    if depth == 0:
        return rng.choice([text, 1, None, True])
    children = [random_json(rng, rng.randrange(depth)) for _ in range(rng.randrange(3))]
    children.insert(rng.randrange(len(children) + 1), random_json(rng, depth - 1))
    return children if rng.random() < 0.5 else {f"{text}{i}": c for i, c in enumerate(children)}


@pytest.mark.parametrize("seed", range(20))
def test_nesting_agrees_with_the_parser_however_the_body_is_cut(seed: int) -> None:
    rng = random.Random(seed)
    depth = rng.randrange(1, 12)
    text = json.dumps(random_json(rng, depth), ensure_ascii=rng.random() < 0.5).encode()
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randrange(1, 40))))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]

    def feed(limit: int) -> int:
        nesting = JsonNesting(limit)
        for chunk in chunks:
            nesting.feed(chunk)
        return nesting.depth

    assert feed(depth) == 0
    with pytest.raises(BodyRefused):
        feed(depth - 1)


def test_nesting_refuses_as_soon_as_the_limit_is_passed() -> None:
    nesting = JsonNesting(3)
    nesting.feed(b"[[[")
    with pytest.raises(BodyRefused):
        nesting.feed(b"[" + b"x" * 10)


# oversized bodies ------------------------------------------------------------------------------


@pytest.fixture
def small_body_client(settings: Settings) -> Iterator[TestClient]:
    small = Settings(**{**settings.__dict__, "max_body_mb": 0.01})  # 10,485 bytes
    with TestClient(create_app(small), headers=AUTH) as client:
        yield client


def test_a_body_over_the_limit_is_a_json_413(small_body_client: TestClient) -> None:
    client = small_body_client
    fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
    big = b"x" * 20_000
    url = f"/v1/functions/{fid}/samples"
    assert_error(client.post(url, json={"data": big.decode()}), 413, "--max-body-mb")
    assert_error(client.post(url, files={"file": ("x.png", big)}), 413, "--max-body-mb")
    assert_error(client.post("/v1/no-such-route", content=big), 413, "--max-body-mb")
    unauthenticated = client.post(url, content=big, headers={"Authorization": ""})
    assert_error(unauthenticated, 413, "--max-body-mb")  # refused before anything reads it

    def streamed() -> Iterator[bytes]:  # chunked: no Content-Length to judge it by
        yield b'{"data": "'
        for _ in range(20):
            yield b"x" * 1000
        yield b'"}'

    assert_error(client.post(url, content=streamed()), 413, "--max-body-mb")
    assert client.get(url).json()["count"] == 0


# framework-made errors -------------------------------------------------------------------------


def test_unknown_routes_and_methods_are_json(client: TestClient) -> None:
    assert_error(client.get("/v1/no-such-route"), 404)
    assert_error(client.get("/static/no-such-file.js"), 404)
    assert_error(client.get("/nyckel/v1/no-such-route"), 404, "Nyckel-compatible API")
    assert_error(client.delete("/v1/functions"), 405)
    malformed = client.post("/v1/functions", content=b'{"name": ', headers=JSON)
    assert_error(malformed, 400, "not valid JSON")
    assert_error(client.post("/v1/functions", json={"name": 1}), 422, "name")


# unhandled exceptions --------------------------------------------------------------------------

SECRET = "a detail only the server log may show"


@pytest.fixture
def failing_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(SECRET)

    monkeypatch.setattr(function_service, "visible_functions", fail)


@pytest.mark.usefixtures("failing_listing")
def test_an_unhandled_exception_is_a_json_500_and_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(settings), headers=AUTH) as client:
        with caplog.at_level(logging.ERROR, logger="winnow.api"):
            response = client.get("/v1/functions")
        assert_error(response, 500, "internal error")
        assert SECRET not in response.text
        assert client.get("/health").status_code == 200  # the service goes on
    logged = [r for r in caplog.records if r.exc_info and SECRET in str(r.exc_info[1])]
    assert logged and "GET /v1/functions" in logged[0].getMessage()


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP/1.1 response (head, body) from ``sock``, its body read by Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection; got {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    length = int(lengths[0].split(b":")[1])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        body += chunk
    return head, body


@pytest.mark.usefixtures("failing_listing")
def test_a_500_keeps_the_connection_open(settings: Settings) -> None:
    with threaded_server(settings) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            request = (
                f"GET {{}} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH['Authorization']}"
                "\r\n\r\n"
            )
            sock.sendall(request.format("/v1/functions").encode())
            head, body = read_response(sock)
            assert head.startswith(b"HTTP/1.1 500 ") and body == b'{"message":"internal error"}'
            assert b"x-content-type-options: nosniff" in head.lower()
            sock.sendall(request.format("/health").encode())  # the same connection
            head, _ = read_response(sock)
            assert head.startswith(b"HTTP/1.1 200 ")


def test_the_guard_sees_every_json_route() -> None:
    """The guard scans the bodies FastAPI or api/inputs.py parse as JSON, and no others."""
    assert body_guard._is_json("")  # api/inputs.py parses a body without one as JSON
    assert body_guard._is_json("application/json; charset=utf-8")
    assert body_guard._is_json("Application/Problem+JSON")
    assert not body_guard._is_json("multipart/form-data; boundary=x")
    assert not body_guard._is_json("text/plain")

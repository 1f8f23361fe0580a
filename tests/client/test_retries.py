"""Retries on 429 / 503 honour Retry-After, back off without it, stop at the wait budget; other
errors raise at once as their exception class. httpx.MockTransport plays the service."""

import asyncio

import httpx
import pytest
from winnow_client import (
    AsyncClient,
    BadRequest,
    Client,
    RateLimited,
    RetryPolicy,
    ServerError,
    Unavailable,
    WinnowError,
)

FUNCTIONS = {"data": [{"id": "function_1", "name": "f"}], "count": 1}


def scripted(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering with ``answers`` in turn (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1]

    return httpx.MockTransport(handler), seen


def refused(status: int, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(status, json={"message": "busy"}, headers=headers)


def sync_client(transport: httpx.MockTransport, waits: list[float], **policy: float) -> Client:
    http = httpx.Client(base_url="http://winnow", transport=transport)
    return Client(http=http, api_key="k", retry=RetryPolicy(**policy), sleep=waits.append)


def test_retry_after_is_honoured_then_the_answer_returned() -> None:
    transport, seen = scripted(
        refused(503, "2"), refused(429, "1"), httpx.Response(200, json=FUNCTIONS)
    )
    waits: list[float] = []
    functions = sync_client(transport, waits).list_functions()
    assert [f.id for f in functions] == ["function_1"]
    assert waits == [2.0, 1.0] and len(seen) == 3
    assert seen[0].headers["Authorization"] == "Bearer k"


def test_backoff_without_retry_after_doubles() -> None:
    transport, seen = scripted(
        refused(503), refused(503), refused(502), httpx.Response(200, json=FUNCTIONS)
    )
    waits: list[float] = []
    sync_client(transport, waits, backoff=1.0).list_functions()
    assert len(waits) == 3 and len(seen) == 4
    for wait, expected in zip(waits, [1.0, 2.0, 4.0], strict=True):
        assert expected * 0.8 <= wait <= expected * 1.2  # with jitter


def test_total_wait_is_capped_and_the_refusal_raised() -> None:
    transport, seen = scripted(refused(429, "30"))
    waits: list[float] = []
    with pytest.raises(RateLimited) as raised:
        sync_client(transport, waits, max_total_wait=70.0, attempts=10).list_functions()
    assert waits == [30.0, 30.0] and len(seen) == 3  # a third wait would pass 70 s
    assert raised.value.status == 429 and raised.value.retry_after == 30.0
    assert raised.value.message == "busy"


def test_attempts_are_bounded() -> None:
    transport, seen = scripted(refused(503, "0"))
    with pytest.raises(Unavailable) as raised:
        sync_client(transport, [], attempts=2).list_functions()
    assert len(seen) == 3 and isinstance(raised.value, ServerError)


def test_client_errors_are_not_retried_and_keep_their_message() -> None:
    transport, seen = scripted(httpx.Response(400, json={"message": "the data is not an image"}))
    with pytest.raises(BadRequest) as raised:
        sync_client(transport, []).invoke("function_1", b"junk")
    assert len(seen) == 1 and raised.value.status == 400
    assert raised.value.message == "the data is not an image"
    plain = scripted(httpx.Response(418, text="teapot"))[0]
    with pytest.raises(WinnowError) as other:
        sync_client(plain, []).list_functions()
    assert (other.value.status, other.value.message) == (418, "teapot")


def test_connection_failures_are_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=FUNCTIONS)

    waits: list[float] = []
    sync_client(httpx.MockTransport(handler), waits, backoff=0.1).list_functions()
    assert calls == 3 and len(waits) == 2


def test_async_client_retries_the_same_way() -> None:
    transport, seen = scripted(refused(503, "3"), httpx.Response(200, json=FUNCTIONS))
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> list[str]:
        http = httpx.AsyncClient(base_url="http://winnow", transport=transport)
        async with AsyncClient(http=http, api_key="k", sleep=record) as winnow:
            return [f.name for f in await winnow.list_functions()]

    assert asyncio.run(main()) == ["f"]
    assert waits == [3.0] and len(seen) == 2

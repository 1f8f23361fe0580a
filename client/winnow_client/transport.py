"""What the sync and async clients share around a request: when to retry and for how long, how a
:class:`~winnow_client.calls.Call` becomes httpx arguments, and how a response becomes a result."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from winnow_client.calls import Call
from winnow_client.errors import error_from_response, retry_after_seconds

T = TypeVar("T")

# Failures before the service saw the request, or a kept-alive connection it had closed: safe to
# send again. A read timeout is not retried (the service may still be working on it).
RETRYABLE_TRANSPORT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of refused requests (429 rate limit, 503 overload, 502/504 from a proxy) and of
    connection failures, with exponential backoff; a ``Retry-After`` header sets the wait."""

    # Retries after the first attempt.
    attempts: int = 5
    # First backoff in seconds without Retry-After; doubles each retry, capped at max_backoff.
    backoff: float = 0.5
    max_backoff: float = 30.0
    # Total seconds spent waiting across retries of one request; past it the error is raised.
    max_total_wait: float = 120.0
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})

    def delay(self, attempt: int, waited: float, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None to give up.

        ``response`` is the refused answer, None after a connection failure.
        """
        if attempt >= self.attempts:
            return None
        asked = None
        if response is not None:
            if response.status_code not in self.statuses:
                return None
            asked = retry_after_seconds(response)
        if asked is None:
            # Jitter keeps many clients refused at once from coming back at once.
            wait = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.8, 1.2)
        else:
            wait = asked
        if waited + wait > self.max_total_wait:
            return None
        return wait


NO_RETRIES = RetryPolicy(attempts=0)


def request_arguments(call: Call[Any]) -> dict[str, Any]:
    """The keyword arguments of ``httpx.Client.request`` for a call."""
    arguments: dict[str, Any] = {"method": call.method, "url": call.path}
    if call.params:
        arguments["params"] = call.params
    if call.json is not None:
        arguments["json"] = call.json
    if call.headers:
        arguments["headers"] = call.headers
    return arguments


def read_response(call: Call[T], response: httpx.Response) -> T:
    """The call's result from a response; an error status raises its WinnowError."""
    if response.status_code >= 400:
        raise error_from_response(response)
    if call.binary:
        return call.parse(response.content)
    if response.status_code == 204 or not response.content:
        return call.parse(None)
    return call.parse(response.json())


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}

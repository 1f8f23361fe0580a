"""Errors the service answers, as exceptions: one class per status family, each with ``status``
and the service's ``message``, so callers can catch ``NotFound`` or any ``WinnowError``."""

from __future__ import annotations

import httpx


class WinnowError(Exception):
    """The service answered with an error; ``status`` is the HTTP status, ``message`` its text."""

    status: int = 0

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        # Seconds the service asked us to wait (429 / 503), when it said.
        self.retry_after = retry_after


class BadRequest(WinnowError):
    """400: the request itself is wrong (most often an image that cannot be decoded)."""


class Unauthorized(WinnowError):
    """401: no key, or an unknown one."""


class Forbidden(WinnowError):
    """403: the key lacks the scope, or belongs to another function."""


class NotFound(WinnowError):
    """404: no such function, label, sample, item or model version (or another tenant's)."""


class Conflict(WinnowError):
    """409: the state forbids it (no model yet, a label in use, an externalId with other data)."""


class PayloadTooLarge(WinnowError):
    """413: the body or the image is larger than the service accepts."""


class Unprocessable(WinnowError):
    """422: a field is missing or invalid."""


class RateLimited(WinnowError):
    """429: the key's rate limit; retried automatically up to the client's wait budget."""


class ServerError(WinnowError):
    """5xx other than 503: a bug or a proxy in the way."""


class Unavailable(ServerError):
    """503: overloaded or a dependency is down; retried automatically up to the wait budget."""


_BY_STATUS: dict[int, type[WinnowError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: Unprocessable,
    429: RateLimited,
    503: Unavailable,
}


def error_for(status: int, message: str, *, retry_after: float | None = None) -> WinnowError:
    """The exception for an error status (a batch entry's, or a response's)."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else WinnowError)
    return cls(status, message, retry_after=retry_after)


def error_from_response(response: httpx.Response) -> WinnowError:
    """The exception for an error response: its ``{"message"}`` (or body text) and Retry-After."""
    try:
        body = response.json()
        message = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    if not isinstance(message, str):
        message = response.text or response.reason_phrase
    return error_for(response.status_code, message, retry_after=retry_after_seconds(response))


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (winnow sends seconds; an HTTP date is ignored)."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None

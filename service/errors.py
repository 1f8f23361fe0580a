"""Errors of the use cases, with their HTTP status as a class attribute (datasette's ``Base400``
style): the application layer says *what* went wrong and how a client should read it, without
knowing HTTP; ``api/errors.py`` maps them, and the domain packages' errors, to responses."""

from __future__ import annotations


class ServiceError(Exception):
    """An error of a use case, its HTTP status carried as data (``status``); ``message`` is
    shown to the client. :mod:`api.errors` turns every one into a response, in one place."""

    status = 400

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class PayloadTooLarge(ServiceError):
    status = 413


class UnsupportedMediaType(ServiceError):
    status = 415


class Unprocessable(ServiceError):
    status = 422


class TooManyRequests(ServiceError):
    status = 429


class ServiceUnavailable(ServiceError):
    status = 503

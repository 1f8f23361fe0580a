"""The one place that maps errors to HTTP responses: the use cases' (:mod:`service.errors`, status
as data) and the domain packages' (mapped below)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    ServiceUnavailable,
    Unprocessable,
    UnsupportedMediaType,
)
from service.schemas import ErrorMessage

log = logging.getLogger("winnow.api")

# Documented on every operation (OpenAPI), in place of FastAPI's default 422 body: what
# install_error_handlers below actually sends.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorMessage, "description": "Refused; `message` says why"},
    503: {
        "model": ErrorMessage,
        "description": "Overloaded, or a backbone or Redis is down: retry after `Retry-After` s",
    },
}


def _domain_errors() -> list[tuple[type[Exception], type[ServiceError]]]:
    """Domain exception -> HTTP class, most specific first."""
    from capture import InvalidPolicy
    from embeddings import (
        BackboneUnavailable,
        DecodeBudgetExhausted,
        EncoderClosed,
        EncoderOverloaded,
        ImageTooLarge,
        InvalidImage,
        UnsupportedImageFormat,
    )
    from learner import NotEnoughData, TrainingCancelled
    from review_queue import InvalidFilter, InvalidTransition, ItemNotFound
    from service.ratelimit import RateLimitUnavailable
    from store import (
        BlobNotFound,
        InvalidLabelName,
        InvalidReviewerName,
        LabelNotAllowed,
        ObjectStoreUnavailable,
    )

    return [
        (ImageTooLarge, PayloadTooLarge),
        (UnsupportedImageFormat, UnsupportedMediaType),
        (InvalidImage, BadRequest),
        (EncoderOverloaded, ServiceUnavailable),
        (DecodeBudgetExhausted, ServiceUnavailable),
        (EncoderClosed, ServiceUnavailable),
        (BackboneUnavailable, ServiceUnavailable),
        (RateLimitUnavailable, ServiceUnavailable),
        (NotEnoughData, Conflict),
        (TrainingCancelled, Conflict),
        (InvalidPolicy, Unprocessable),
        (ItemNotFound, NotFound),
        (InvalidFilter, Unprocessable),
        (InvalidTransition, Conflict),
        (LabelNotAllowed, Unprocessable),
        (InvalidLabelName, Unprocessable),
        (InvalidReviewerName, Unprocessable),
        (BlobNotFound, NotFound),
        (ObjectStoreUnavailable, ServiceUnavailable),
    ]


def to_api_error(exc: BaseException) -> ServiceError | None:
    if isinstance(exc, ServiceError):
        return exc
    for domain, http in _domain_errors():
        if isinstance(exc, domain):
            headers = {}
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                headers["Retry-After"] = str(max(1, round(float(retry_after))))
            return http(str(exc) or domain.__name__, headers=headers)
    return None


def error_response(error: ServiceError) -> JSONResponse:
    return JSONResponse({"message": error.message}, status_code=error.status, headers=error.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as JSON ``{message}``; domain errors map to their 4xx/503 class."""

    async def _domain(_request: Request, exc: Exception) -> JSONResponse:
        error = to_api_error(exc)
        if error is None:  # pragma: no cover - registered only for mapped classes
            raise exc
        return error_response(error)

    for domain, _status in _domain_errors():
        app.add_exception_handler(domain, _domain)

    @app.exception_handler(ServiceError)
    async def _api(_request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        malformed = next((err for err in errors if err.get("type") == "json_invalid"), None)
        if malformed is not None:  # a 400, as api/inputs.py answers bodies it parses itself
            reason, where = malformed["ctx"]["error"], malformed["loc"][-1]
            return error_response(
                BadRequest(f"request body is not valid JSON: {reason}: char {where}")
            )
        parts = []
        for err in errors:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        return JSONResponse({"message": "; ".join(parts) or "invalid request"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )


class InternalErrorMiddleware:
    """Any exception no handler took becomes a JSON 500 ``{message: "internal error"}`` (its
    traceback goes to the log, never to the client).

    Starlette's own ServerErrorMiddleware answers in plain text, outside every other middleware
    (so without the security headers), and re-raises, on which uvicorn closes the keep-alive
    connection. Installed inside the security headers, this one answers and returns.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except Exception:
            if started:  # part of a response is out: only closing the connection can say so
                raise
            log.exception("internal error answering %s %s", scope["method"], scope["path"])
            response = JSONResponse({"message": "internal error"}, status_code=500)
            await response(scope, receive, send)

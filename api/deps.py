"""Dependency providers and their ``Annotated`` aliases, so routes stay a few lines."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from functools import cache
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from service.auth import Principal, Scope
from service.errors import BadRequest, TooManyRequests
from service.ratelimit import retry_after_header
from service.runtime import Runtime
from service.settings import Settings
from store import session_scope


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(rt: RuntimeDep) -> Iterator[Session]:
    """A read-mostly session for the request; writes go through services with their own scope."""
    with session_scope(rt.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


async def reject_nul_characters(request: Request) -> None:
    """400 for a NUL character in the URL path or query: PostgreSQL cannot even compare such text
    with a column, and no id or value of winnow contains one (app-wide dependency)."""
    if "\x00" in request.url.path or any("\x00" in v for v in request.query_params.values()):
        raise BadRequest("the URL must not contain NUL characters (%00)")


def public_base_url(request: Request, settings: Settings) -> str:
    """Where the absolute URLs this service hands out start: ``public_url``; else the request's
    own base only when its ``Host`` names this server (the bound address or localhost on the bound
    port); else "" (a path, resolved against the server the client reached), so a forged
    ``Host`` never sends clients and their keys elsewhere."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    names = {settings.host, "localhost", "127.0.0.1", "[::1]"}
    names = {f"[{name}]" if ":" in name and not name.startswith("[") else name for name in names}
    trusted = {f"{name}:{settings.port}" for name in names}
    if settings.port in (80, 443):
        trusted |= names
    if request.headers.get("host", "").lower() in trusted:
        return str(request.base_url).rstrip("/")
    return ""


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")


def get_principal(
    request: Request,
    rt: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The verified caller (401 otherwise), within its rate limit and, on a function's route,
    allowed to see that function (another tenant's function is a 404, as a missing one)."""
    return verify_caller(
        rt,
        credentials.credentials if credentials else None,
        function_id=request.path_params.get("function_id"),
        address=client_address(request),
    )


def client_address(request: Request) -> str | None:
    """The peer's address; behind a proxy that FORWARDED_ALLOW_IPS trusts (uvicorn; default: a
    local one), the X-Forwarded-For address it sends."""
    return request.client.host if request.client else None


def verify_caller(
    rt: Runtime, key: str | None, *, function_id: str | None, address: str | None
) -> Principal:
    """Authenticate ``key`` sent from ``address`` (failures throttled), take one request from its
    rate limit, check its tenant."""
    principal = rt.auth_throttle.authenticate(key, address)
    if principal.rate_limit_per_minute is not None:
        wait = rt.rate_limits.take(principal.key_id, principal.rate_limit_per_minute)
        if wait is not None:
            headers = retry_after_header(wait)
            raise TooManyRequests("rate limit of this API key exceeded", headers=headers)
    if function_id is not None:
        principal.ensure_function(function_id)
    return principal


@cache  # one callable per scope, so FastAPI resolves it once per request however often it is used
def require_scope(scope: Scope) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller, who must hold ``scope`` (403 otherwise).

    Dependencies that never block are ``async``: FastAPI runs a plain ``def`` one in the thread
    pool, a hand-off that cost an invoke about 0.3 ms of CPU each (B2's harness)."""

    async def dependency(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        principal.require(scope)
        return principal

    return dependency


# Any valid key (reads of a function and its labels); then one alias per scope.
AnyKey = Annotated[Principal, Depends(get_principal)]
InvokeKey = Annotated[Principal, Depends(require_scope("invoke"))]
AnnotateKey = Annotated[Principal, Depends(require_scope("annotate"))]
AdminKey = Annotated[Principal, Depends(require_scope("admin"))]

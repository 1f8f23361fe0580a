"""Dependency providers and their ``Annotated`` aliases, so routes stay a few lines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from api.runtime import Runtime
from store import session_scope


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(rt: RuntimeDep) -> Iterator[Session]:
    """A read-mostly session for the request; writes go through services with their own scope."""
    with session_scope(rt.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

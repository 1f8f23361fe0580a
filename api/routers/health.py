"""/health"""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func as sql
from sqlmodel import select

from api.deps import RuntimeDep, SessionDep
from api.schemas import Health
from store import Function

router = APIRouter(tags=["health"])


@router.get("/health")
def health(rt: RuntimeDep, session: SessionDep) -> Health:
    """Liveness plus the backbone actually in use (after ``auto`` resolved)."""
    functions = session.exec(select(sql.count()).select_from(Function)).one()
    return Health(
        status="ok",
        backbone=rt.encoders.default_spec,
        backbones_loaded=rt.encoders.loaded(),
        database=rt.engine.dialect.name,
        functions=functions,
    )

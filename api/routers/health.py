"""/health"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import RuntimeDep
from service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health")
def health(rt: RuntimeDep) -> Health:
    """Liveness plus the backbone actually in use (after ``auto`` resolved); no key needed, so it
    reveals nothing about tenants."""
    return Health(
        status="ok",
        backbone=rt.encoders.default_spec,
        backbones_loaded=rt.encoders.loaded(),
        database=rt.engine.dialect.name,
    )

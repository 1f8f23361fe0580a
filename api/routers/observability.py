"""GET /metrics: the service's Prometheus metrics (included only while the ``metrics`` setting is
on)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import AdminKey, RuntimeDep
from service.metrics import CONTENT_TYPE

router = APIRouter(tags=["observability"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(rt: RuntimeDep, principal: AdminKey) -> Response:
    """This process's metrics in Prometheus' text format. Admin scope on every function: the
    metrics name every function (review queue depth per function id)."""
    principal.require_every_function("read the service's metrics")
    return Response(rt.metrics.exposition(), media_type=CONTENT_TYPE)

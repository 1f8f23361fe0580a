"""The dashboard's data: labels by count, the review queue over time, and its charts as PNGs."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import AdminKey, RuntimeDep, SessionDep
from service import charts
from service import dashboard as service
from service.functions import get_function
from service.schemas import DashboardPublic

router = APIRouter(prefix="/v1/functions/{function_id}", tags=["dashboard"])

DEFAULT_HOURS, MAX_HOURS = 48, 24 * 90
Hours = Annotated[int, Query(ge=1, le=MAX_HOURS, description="Hourly buckets, ending now.")]


class Chart(StrEnum):
    model_history = "model-history"
    activity = "activity"
    labels = "labels"


@router.get("/dashboard")
def dashboard(
    function_id: str, session: SessionDep, rt: RuntimeDep, _: AdminKey, hours: Hours = DEFAULT_HOURS
) -> DashboardPublic:
    """Labelled samples per label, and per hour: items captured, items reviewed, queue depth,
    and the invokes this process counted (with the capture rate and novel invokes)."""
    traffic = service.traffic_of(rt, function_id, hours=hours)
    return service.dashboard(session, function_id, hours=hours, traffic=traffic)


@router.get(
    "/charts/{chart}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def chart(
    function_id: str,
    chart: Chart,
    session: SessionDep,
    rt: RuntimeDep,
    _: AdminKey,
    hours: Hours = DEFAULT_HOURS,
) -> Response:
    """A dashboard chart: the model history (accuracy, samples and deploy decision per version),
    the review activity over ``hours``, or the labels by count."""
    get_function(session, function_id)
    if chart is Chart.model_history:
        png = charts.model_history_png(service.model_versions(session, function_id))
    elif chart is Chart.activity:
        traffic = service.traffic_of(rt, function_id, hours=hours)
        png = charts.activity_png(
            service.activity(session, function_id, hours=hours, traffic=traffic)
        )
    else:
        png = charts.label_counts_png(service.label_counts(session, function_id)[0])
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

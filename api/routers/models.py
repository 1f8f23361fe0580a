"""Training, model versions and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from api.deps import RuntimeDep, SessionDep
from api.errors import NotFound
from api.schemas import ModelVersionPublic, Page
from api.services.functions import get_function
from api.services.training import train_function
from learner import confusion_matrix_png
from store import ModelVersion

router = APIRouter(prefix="/v1/functions/{function_id}", tags=["models"])


@router.post("/train")
async def train(function_id: str, rt: RuntimeDep) -> ModelVersionPublic:
    """Train now on every labelled sample; returns the new version with its metrics."""
    record = await run_in_threadpool(train_function, rt, function_id)
    return ModelVersionPublic.model_validate(record, from_attributes=True)


@router.get("/models")
def list_models(function_id: str, session: SessionDep) -> Page[ModelVersionPublic]:
    get_function(session, function_id)
    rows = session.exec(
        select(ModelVersion)
        .where(ModelVersion.function_id == function_id)
        .order_by(col(ModelVersion.version).desc())
    ).all()
    data = [ModelVersionPublic.model_validate(r, from_attributes=True) for r in rows]
    return Page(data=data, count=len(data))


def _deployed(session: SessionDep, function_id: str) -> ModelVersion:
    function = get_function(session, function_id)
    row = session.exec(
        select(ModelVersion).where(
            ModelVersion.function_id == function_id,
            ModelVersion.version == function.deployed_version,
        )
    ).first()
    if row is None:
        raise NotFound(f"function {function_id} has no deployed model yet")
    return row


@router.get("/metrics")
def metrics(function_id: str, session: SessionDep) -> ModelVersionPublic:
    """The deployed version with its cross-validated metrics."""
    return ModelVersionPublic.model_validate(_deployed(session, function_id), from_attributes=True)


@router.get(
    "/metrics/confusion-matrix.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def confusion_matrix(function_id: str, session: SessionDep) -> Response:
    row = _deployed(session, function_id)
    png = confusion_matrix_png(row.metrics, title=f"{function_id} v{row.version}")
    return Response(png, media_type="image/png")

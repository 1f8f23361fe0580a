"""Training, model versions, deploy / rollback / pin, and metrics."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.responses import JSONResponse
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from api.deps import RuntimeDep, SessionDep
from learner import confusion_matrix_png
from service import deploys, model_export
from service import training as service
from service.errors import Conflict, NotFound
from service.finetune import finetune_function
from service.functions import function_public, get_function
from service.novelty import drift_public
from service.schemas import (
    FunctionMetricsPublic,
    FunctionPublic,
    ModelVersionPublic,
    Page,
    TrainingStatusPublic,
)
from store import ModelVersion, session_scope

router = APIRouter(prefix="/v1/functions/{function_id}", tags=["models"])


def _public(record: ModelVersion) -> ModelVersionPublic:
    return ModelVersionPublic.model_validate(record, from_attributes=True)


@router.post(
    "/train",
    responses={202: {"model": TrainingStatusPublic, "description": "Queued (wait=false)"}},
)
async def train(function_id: str, rt: RuntimeDep, wait: bool = True) -> ModelVersionPublic:
    """Train now on every labelled sample. The new version is deployed only if it is not worse
    than the serving one (see its ``decision``). With ``wait=false`` the training is queued for
    the scheduler and the training status is returned (202); 409 when the scheduler is off."""
    if not wait:
        with session_scope(rt.engine) as session:
            get_function(session, function_id)
        if rt.scheduler is None:
            raise Conflict(
                "the retrain scheduler is off (retrain_interval 0): train with wait=true"
            )
        service.request_training(rt, function_id)
        body = training_status(function_id, rt).model_dump(mode="json", by_alias=True)
        return JSONResponse(body, status_code=status.HTTP_202_ACCEPTED)  # type: ignore[return-value]
    record = await run_in_threadpool(service.train_function, rt, function_id)
    assert record is not None  # wait=True always trains
    return _public(record)


@router.post("/finetune")
async def finetune(function_id: str, rt: RuntimeDep) -> ModelVersionPublic:
    """Tune the backbone's last blocks and a new head on the function's stored images (and
    augmented views of them), and deploy the result only if it wins over a frozen head on the
    same holdout (see its ``decision``). Waits for the result; 409 when the function's backbone
    cannot be cut (EfficientNet-Lite0 functions only), without the in-process encoder, or with
    fewer than 5 labelled samples of a label. Cancel it with ``POST .../training/cancel``."""
    record = await run_in_threadpool(finetune_function, rt, function_id)
    assert record is not None  # wait=True always tunes
    return _public(record)


@router.post("/training/cancel")
def cancel_training(function_id: str, rt: RuntimeDep) -> TrainingStatusPublic:
    """Stop the function's fine-tune running in this process: nothing is recorded and the
    deployed version stays. 409 when none runs here (a head's training is not cancelled: it
    takes seconds)."""
    with session_scope(rt.engine) as session:
        get_function(session, function_id)
    if rt.training.status(function_id).kind != "finetune" or not rt.training.cancel(function_id):
        raise Conflict(f"function {function_id} has no fine-tune running in this process")
    return training_status(function_id, rt)


@router.get("/training")
def training_status(function_id: str, rt: RuntimeDep) -> TrainingStatusPublic:
    """What training is doing now, and the last decision (deployed or rejected, and why)."""
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
        last = session.exec(
            select(ModelVersion)
            .where(ModelVersion.function_id == function_id)
            .order_by(col(ModelVersion.version).desc())
        ).first()
    current = rt.training.status(function_id)
    if current.finished_at is None and last is not None and last.version > 0:
        # no run in this process since it started: the newest trained version tells when
        current = replace(current, finished_at=last.created_at)
    return TrainingStatusPublic(
        **current.to_dict(),
        deployed_version=function.deployed_version,
        pinned=function.pinned,
        new_annotations=service.new_annotations(rt, function),
        retrain_min_annotations=rt.settings.retrain_min_annotations,
        last_decision=_public(last) if last else None,
    )


@router.get("/models")
def list_models(function_id: str, session: SessionDep) -> Page[ModelVersionPublic]:
    """Every trained version, newest first, with metrics and its deploy decision."""
    get_function(session, function_id)
    rows = session.exec(
        select(ModelVersion)
        .where(ModelVersion.function_id == function_id)
        .order_by(col(ModelVersion.version).desc())
    ).all()
    return Page(data=[_public(r) for r in rows], count=len(rows))


@router.post("/models/{version}/deploy")
def deploy(
    function_id: str,
    version: Annotated[int, Path(ge=0, le=2**31 - 1)],
    rt: RuntimeDep,
    pin: bool = True,
) -> ModelVersionPublic:
    """Serve this version now (roll back or forward). ``pin`` (default) stops automatic
    promotion of retrained versions until the function is unpinned. Version 0, the zero-shot
    head, is brought up to date with the labels at its next invoke."""
    return _public(deploys.deploy_version(rt, function_id, version, pin=pin))


@router.post("/pin")
def pin(function_id: str, rt: RuntimeDep) -> FunctionPublic:
    """Keep the deployed version: retraining still records versions but does not promote them."""
    deploys.set_pinned(rt, function_id, True)
    with session_scope(rt.engine) as session:
        return function_public(session, get_function(session, function_id))


@router.delete("/pin")
def unpin(function_id: str, rt: RuntimeDep) -> FunctionPublic:
    """Resume automatic promotion of retrained versions."""
    deploys.set_pinned(rt, function_id, False)
    with session_scope(rt.engine) as session:
        return function_public(session, get_function(session, function_id))


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
def metrics(function_id: str, session: SessionDep, rt: RuntimeDep) -> FunctionMetricsPublic:
    """The deployed version with its cross-validated (out-of-fold) metrics, and ``drift``: the
    share of novel traffic per hour over the last day (the signal to alert on)."""
    row = _deployed(session, function_id)
    function = get_function(session, function_id)
    return FunctionMetricsPublic.model_validate(
        {**_public(row).model_dump(), "drift": drift_public(rt, function)}
    )


@router.get(
    "/metrics/confusion-matrix.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def confusion_matrix(function_id: str, session: SessionDep) -> Response:
    """The deployed version's out-of-fold confusion matrix as a picture."""
    row = _deployed(session, function_id)
    name = get_function(session, function_id).name
    png = confusion_matrix_png(row.metrics, title=f"{name} v{row.version}")
    return Response(png, media_type="image/png")


@router.get(
    "/model.onnx",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def export_onnx(
    function_id: str,
    rt: RuntimeDep,
    version: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> Response:
    """One ONNX file from uint8 RGB pixels to the version's calibrated probabilities (default:
    the deployed version), labels and preprocessing in its metadata; runs with onnxruntime alone
    (docs: Export a model)."""
    data, filename = model_export.export_model(rt, function_id, version)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )

"""/v1/functions and their labels."""

from __future__ import annotations

from fastapi import APIRouter, status
from starlette.concurrency import run_in_threadpool

from api.deps import AdminKey, AnyKey, RuntimeDep, SessionDep
from service import functions as service
from service.schemas import FunctionCreate, FunctionPublic, LabelCreate, LabelPublic, Page
from service.zero_shot import labels_changed
from store import session_scope

router = APIRouter(prefix="/v1/functions", tags=["functions"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_function(body: FunctionCreate, rt: RuntimeDep, caller: AdminKey) -> FunctionPublic:
    caller.require_every_function("create functions")
    function = await run_in_threadpool(
        service.create_function,
        rt,
        name=body.name,
        labels=body.labels,
        backbone=body.backbone,
        preset=body.preset,
    )
    with session_scope(rt.engine) as session:
        return service.function_public(session, function)


@router.get("")
def list_functions(session: SessionDep, caller: AnyKey) -> Page[FunctionPublic]:
    """The functions the key can see: its own, or every one for a global key."""
    functions = service.visible_functions(session, caller.function_id)
    data = [service.function_public(session, f) for f in functions]
    return Page(data=data, count=len(data))


@router.get("/{function_id}")
def get_function(function_id: str, session: SessionDep, _: AnyKey) -> FunctionPublic:
    return service.function_public(session, service.get_function(session, function_id))


@router.delete("/{function_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_function(function_id: str, rt: RuntimeDep, _: AdminKey) -> None:
    service.delete_function(rt, function_id)


@router.post("/{function_id}/labels", status_code=status.HTTP_201_CREATED)
def create_label(function_id: str, body: LabelCreate, rt: RuntimeDep, _: AdminKey) -> LabelPublic:
    with session_scope(rt.engine) as session:
        service.get_function(session, function_id)
        label = service.create_label(
            session, function_id, name=body.name, description=body.description
        )
    labels_changed(rt, function_id)  # version 0 learns the new label's text
    return LabelPublic.model_validate(label, from_attributes=True)


@router.get("/{function_id}/labels")
def list_labels(function_id: str, session: SessionDep, _: AnyKey) -> Page[LabelPublic]:
    labels = service.list_labels(session, function_id)
    data = [LabelPublic.model_validate(label, from_attributes=True) for label in labels]
    return Page(data=data, count=len(data))


@router.get("/{function_id}/labels/{label_id}")
def get_label(function_id: str, label_id: str, session: SessionDep, _: AnyKey) -> LabelPublic:
    return LabelPublic.model_validate(
        service.get_label(session, function_id, label_id), from_attributes=True
    )


@router.put("/{function_id}/labels/{label_id}")
def update_label(
    function_id: str, label_id: str, body: LabelCreate, rt: RuntimeDep, _: AdminKey
) -> LabelPublic:
    """Rename or describe a label (a label a model version learnt keeps its name: 409)."""
    label = service.update_label(
        rt, function_id, label_id, name=body.name, description=body.description
    )
    return LabelPublic.model_validate(label, from_attributes=True)


@router.delete("/{function_id}/labels/{label_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_label(function_id: str, label_id: str, rt: RuntimeDep, _: AdminKey) -> None:
    """Delete a label no sample, review item or model version uses (409 otherwise)."""
    service.delete_label(rt, function_id, label_id)

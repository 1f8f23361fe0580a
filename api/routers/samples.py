"""/v1/functions/{id}/samples"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from api.deps import AdminKey, AnnotateKey, RuntimeDep, SessionDep
from api.inputs import openapi_body, read_image_request
from embeddings import sniff_mime_type
from service import samples as service
from service.auth import Principal
from service.errors import Unprocessable
from service.schemas import (
    MAX_START_INDEX,
    Annotation,
    LabelEventPublic,
    Page,
    SampleCreate,
    SamplePublic,
)
from store import Label, LabelChange, session_scope

router = APIRouter(prefix="/v1/functions/{function_id}/samples", tags=["samples"])

_multipart_fields = {
    "labelName": {"type": "string"},
    "annotatedBy": {"type": "string"},
    "externalId": {"type": "string"},
    "via": {"type": "string", "enum": ["import"]},
}


def _change(
    caller: Principal, annotated_by: str | None = None, *, imported: bool = False
) -> LabelChange:
    """How the label history records a change through this API (403 for a non-admin key that
    names someone in ``annotatedBy``)."""
    return LabelChange((caller.actor(annotated_by),), "import" if imported else "sample_api")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=openapi_body(SampleCreate, _multipart_fields),
    responses={
        200: {"description": "Retried with the same externalId or Idempotency-Key: the sample"}
    },
)
async def create_sample(
    function_id: str,
    request: Request,
    response: Response,
    rt: RuntimeDep,
    caller: AnnotateKey,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="Alternative to `externalId` (it becomes the sample's externalId): a "
            "retry with the same key and content returns the first sample, other content is 409.",
        ),
    ] = None,
) -> SamplePublic:
    """Add an image (data URI, URL or multipart file), optionally labelled."""
    data, body = await read_image_request(request, SampleCreate, rt.settings)
    annotation = body.annotation
    change = _change(
        caller, annotation.annotated_by if annotation else None, imported=body.via == "import"
    )
    external_id = body.external_id
    if idempotency_key is not None:
        if external_id is not None and external_id != idempotency_key:
            raise Unprocessable("externalId and the Idempotency-Key header differ: send one")
        external_id = idempotency_key
    sample, created = await run_in_threadpool(
        service.add_sample,
        rt,
        function_id,
        data=data,
        label_name=annotation.label_name if annotation else None,
        external_id=external_id,
        change=change,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return _public(rt, sample)


@router.get("")
def list_samples(
    function_id: str,
    session: SessionDep,
    _: AnnotateKey,
    annotated: bool | None = None,
    start_index: Annotated[int, Query(alias="startIndex", ge=0, le=MAX_START_INDEX)] = 0,
    count: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[SamplePublic]:
    rows, total = service.list_samples(
        session, function_id, annotated=annotated, start=start_index, count=count
    )
    by = service.reviewers(session, [s.id for s, _ in rows])
    data = [service.sample_public(s, label, by.get(s.id)) for s, label in rows]
    return Page(data=data, count=total)


@router.get("/{sample_id}")
def get_sample(function_id: str, sample_id: str, rt: RuntimeDep, _: AnnotateKey) -> SamplePublic:
    with session_scope(rt.engine) as session:
        sample = service.get_sample(session, function_id, sample_id)
    return _public(rt, sample)


@router.get("/{sample_id}/image", response_class=Response)
def get_sample_image(function_id: str, sample_id: str, rt: RuntimeDep, _: AnnotateKey) -> Response:
    with session_scope(rt.engine) as session:
        sample = service.get_sample(session, function_id, sample_id)
    data = rt.blobs.get(sample.blob)
    return Response(data, media_type=sniff_mime_type(data))


@router.get("/{sample_id}/history")
def sample_history(
    function_id: str, sample_id: str, session: SessionDep, _: AnnotateKey
) -> Page[LabelEventPublic]:
    """The sample's label changes, oldest first: when, the label before and after, who, and
    through what path. A deleted sample's history stays readable."""
    events = service.sample_history(session, function_id, sample_id)
    data = [LabelEventPublic.model_validate(event, from_attributes=True) for event in events]
    return Page(data=data, count=len(data))


@router.put("/{sample_id}/annotation")
def set_annotation(
    function_id: str, sample_id: str, body: Annotation, rt: RuntimeDep, caller: AnnotateKey
) -> SamplePublic:
    change = _change(caller, body.annotated_by)
    sample = service.set_annotation(rt, function_id, sample_id, body.label_name, change)
    return _public(rt, sample)


@router.delete("/{sample_id}/annotation")
def remove_annotation(
    function_id: str, sample_id: str, rt: RuntimeDep, caller: AnnotateKey
) -> SamplePublic:
    """Make the sample unlabelled again; retraining counts it as an annotation change."""
    return _public(rt, service.remove_annotation(rt, function_id, sample_id, _change(caller)))


@router.delete("/{sample_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_sample(function_id: str, sample_id: str, rt: RuntimeDep, caller: AdminKey) -> None:
    """Delete the sample; its label history stays (``GET .../history``)."""
    service.delete_sample(rt, function_id, sample_id, _change(caller))


def _public(rt: RuntimeDep, sample) -> SamplePublic:  # type: ignore[no-untyped-def]
    with session_scope(rt.engine) as session:
        label = session.get(Label, sample.label_id) if sample.label_id else None
        by = service.reviewers(session, [sample.id])
    return service.sample_public(sample, label, by.get(sample.id))

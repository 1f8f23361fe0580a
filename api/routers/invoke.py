"""/v1/functions/{id}/invoke and /v1/functions/{id}/invoke/batch"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from api.deps import InvokeKey, RuntimeDep
from api.errors import to_api_error
from api.inputs import openapi_body, read_image_request, read_images_request
from embeddings import InvalidImage
from service.errors import ServiceError
from service.invoke import invoke as invoke_service
from service.invoke import invoke_batch as invoke_batch_service
from service.schemas import (
    BatchInvokeInput,
    BatchInvokeResult,
    ImageInput,
    InvokeEntryError,
    InvokeResult,
)

router = APIRouter(prefix="/v1/functions/{function_id}", tags=["invoke"])

Version = Annotated[int | None, Query(ge=0, le=2**31 - 1)]  # 0: the zero-shot head
LabelCount = Annotated[
    int | None,
    Query(
        alias="labelCount",
        ge=1,
        le=2**31 - 1,
        description="Answer with the confidences of the most likely labels only (default: all).",
    ),
]


@router.post("/invoke", openapi_extra=openapi_body(ImageInput, {}))
async def invoke(
    function_id: str,
    request: Request,
    rt: RuntimeDep,
    _key: InvokeKey,
    capture: bool = True,
    version: Version = None,
    label_count: LabelCount = None,
) -> InvokeResult:
    """Classify an image (data URI, URL or multipart file) with the deployed model.

    With ``capture`` (default) the input may also be captured into the review queue; the
    response's ``capture`` says whether, why, and the queue item's id. ``version`` answers with
    another recorded version instead (never captured). ``labelCount`` keeps the confidences of
    that many most likely labels (a 1,000-label function's answer is about 100 KB).
    """
    data, _ = await read_image_request(request, ImageInput, rt.settings)
    answer = await run_in_threadpool(
        invoke_service, rt, function_id, data, capture=capture, version=version
    )
    return _most_likely(answer, label_count)


@router.post("/invoke/batch", openapi_extra=openapi_body(BatchInvokeInput, {}, several_files=True))
async def invoke_batch(
    function_id: str,
    request: Request,
    rt: RuntimeDep,
    _key: InvokeKey,
    capture: bool = True,
    version: Version = None,
    label_count: LabelCount = None,
) -> BatchInvokeResult:
    """Classify several images (JSON ``items`` or several multipart ``file`` parts) at once.

    ``data`` holds one entry per image, in order: what single invoke answers for it (``capture``,
    ``version`` and ``labelCount`` apply to every image), or ``{status, message}`` for an image
    that fails on its own. The images are embedded together, so this is cheaper than one invoke
    per image.
    """
    entries = await read_images_request(request, rt.settings)
    readable = [entry for entry in entries if isinstance(entry, bytes)]
    answers = iter(
        await run_in_threadpool(
            invoke_batch_service, rt, function_id, readable, capture=capture, version=version
        )
    )
    return BatchInvokeResult(
        data=[
            _entry(next(answers) if isinstance(entry, bytes) else entry, label_count)
            for entry in entries
        ]
    )


def _most_likely(answer: InvokeResult, label_count: int | None) -> InvokeResult:
    """``answer`` with the confidences of its ``label_count`` most likely labels (all: None);
    they come ranked, the most likely first."""
    if label_count is None or len(answer.label_confidences) <= label_count:
        return answer
    return answer.model_copy(update={"label_confidences": answer.label_confidences[:label_count]})


def _entry(
    answer: InvokeResult | InvalidImage | ServiceError, label_count: int | None
) -> InvokeResult | InvokeEntryError:
    """A batch entry: the answer (with ``label_count`` labels' confidences, see
    :func:`_most_likely`), or the status and message single invoke gives for its error."""
    if isinstance(answer, InvokeResult):
        return _most_likely(answer, label_count)
    error = to_api_error(answer)
    if error is None:  # pragma: no cover - every InvalidImage maps to a 4xx
        raise answer
    return InvokeEntryError(status=error.status, message=error.message)

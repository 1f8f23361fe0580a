"""/v1/functions/{id}/invoke"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from api.deps import InvokeKey, RuntimeDep
from api.inputs import openapi_body, read_image_request
from api.schemas import ImageInput, InvokeResult
from api.services.invoke import invoke as invoke_service

router = APIRouter(prefix="/v1/functions/{function_id}", tags=["invoke"])


@router.post("/invoke", openapi_extra=openapi_body(ImageInput, {}))
async def invoke(
    function_id: str,
    request: Request,
    rt: RuntimeDep,
    _key: InvokeKey,
    capture: bool = True,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> InvokeResult:
    """Classify an image (data URI, URL or multipart file) with the deployed model.

    With ``capture`` (default) the input may also be captured into the review queue; the
    response's ``capture`` says whether, why, and the queue item's id. ``version`` answers with
    another recorded version instead (never captured).
    """
    data, _ = await read_image_request(request, ImageInput, rt.settings)
    return await run_in_threadpool(
        invoke_service, rt, function_id, data, capture=capture, version=version
    )

"""/v1/functions/{id}/search, .../samples/{id}/similar and .../review/{id}/similar"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from api.deps import AnnotateKey, RuntimeDep
from api.inputs import openapi_body, read_image_request
from service import search as service
from service.schemas import SEARCH_DEFAULT_COUNT, SEARCH_MAX_COUNT, Page, SearchHit, SearchQuery

router = APIRouter(prefix="/v1/functions/{function_id}", tags=["search"])

_multipart_fields = {"count": {"type": "integer", "minimum": 1, "maximum": SEARCH_MAX_COUNT}}


@router.post("/search", openapi_extra=openapi_body(SearchQuery, _multipart_fields))
async def search(
    function_id: str, request: Request, rt: RuntimeDep, _: AnnotateKey
) -> Page[SearchHit]:
    """The labelled samples most similar to an image (data URI, URL or multipart file), most
    similar first (cosine similarity of the embeddings)."""
    data, body = await read_image_request(request, SearchQuery, rt.settings)
    hits = await run_in_threadpool(service.search_image, rt, function_id, data, count=body.count)
    return Page(data=hits, count=len(hits))


@router.get("/samples/{sample_id}/similar")
def similar_samples(
    function_id: str,
    sample_id: str,
    rt: RuntimeDep,
    _: AnnotateKey,
    count: Annotated[int, Query(ge=1, le=SEARCH_MAX_COUNT)] = SEARCH_DEFAULT_COUNT,
) -> Page[SearchHit]:
    """The labelled samples most similar to a stored sample, most similar first (not itself)."""
    hits = service.similar_samples(rt, function_id, sample_id, count=count)
    return Page(data=hits, count=len(hits))


@router.get("/review/{item_id}/similar")
def similar_to_item(
    function_id: str,
    item_id: str,
    rt: RuntimeDep,
    _: AnnotateKey,
    count: Annotated[int, Query(ge=1, le=SEARCH_MAX_COUNT)] = SEARCH_DEFAULT_COUNT,
) -> Page[SearchHit]:
    """The labelled samples most similar to a review item, most similar first (what a reviewer
    compares it with)."""
    hits = service.similar_to_item(rt, function_id, item_id, count=count)
    return Page(data=hits, count=len(hits))

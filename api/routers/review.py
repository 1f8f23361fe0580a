"""The review queue: list captured items, claim pages of them, annotate / skip / discard them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

import review_queue
from api.deps import AdminKey, AnnotateKey, RuntimeDep, SessionDep
from embeddings import sniff_mime_type
from review_queue import ItemKind
from service import review as service
from service import reviewers as reviewers_service
from service.functions import get_function
from service.schemas import (
    MAX_START_INDEX,
    BulkAnnotate,
    ClaimedPage,
    Page,
    Released,
    ReviewAnnotate,
    ReviewClaimBody,
    ReviewCounts,
    ReviewerPublic,
    ReviewItemPublic,
    ReviewRelease,
)
from store import session_scope

router = APIRouter(tags=["review"])
_item = "/v1/functions/{function_id}/review/{item_id}"


@router.get("/v1/functions/{function_id}/review")
def list_items(
    function_id: str,
    session: SessionDep,
    caller: AnnotateKey,
    status: Annotated[
        str,
        Query(description="pending, annotated, skipped, discarded or disputed (admin keys)."),
    ] = "pending",
    kind: Annotated[
        ItemKind | None,
        Query(
            description="Only items of this kind (every kind but gold when omitted; gold: "
            "admin keys)."
        ),
    ] = None,
    start_index: Annotated[int, Query(alias="startIndex", ge=0, le=MAX_START_INDEX)] = 0,
    count: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Page[ReviewItemPublic]:
    """Items in a status, most informative first: captures (``kind=capture``) and mislabel
    suspects (``kind=suspect``, most suspicious first), or both when ``kind`` is omitted. A team
    works through claims (``POST .../review/claim``) rather than this list."""
    data, total = service.list_public(
        session, caller, function_id, status=status, kind=kind, start=start_index, count=count
    )
    return Page(data=data, count=total)


@router.get("/v1/functions/{function_id}/review/counts")
def counts(function_id: str, session: SessionDep, _: AnnotateKey) -> ReviewCounts:
    get_function(session, function_id)
    return ReviewCounts(**review_queue.counts(session=session, function_id=function_id))


@router.get("/v1/functions/{function_id}/reviewers")
async def list_reviewers(function_id: str, rt: RuntimeDep, _: AdminKey) -> Page[ReviewerPublic]:
    """Each reviewer's counts and quality: Dawid-Skene's estimated accuracy, Cohen's kappa
    against the decided labels, accuracy on gold items and items per hour, most votes first."""
    data = await run_in_threadpool(reviewers_service.reviewers, rt, function_id)
    return Page(data=data, count=len(data))


@router.post("/v1/functions/{function_id}/review/claim")
async def claim(
    function_id: str, body: ReviewClaimBody, rt: RuntimeDep, caller: AnnotateKey
) -> ClaimedPage:
    """Reserve up to ``count`` pending items to the calling key's reviewer until ``expiresAt``
    (the policy's ``claimMinutes``): the items you already hold first (their leases renewed),
    then the most informative ones nobody else holds. Other reviewers are not handed them,
    unless an item needs more reviews (``reviewsPerItem``, ``overlapRate``)."""
    return await run_in_threadpool(
        service.claim_page, rt, caller, function_id, count=body.count, kind=body.kind
    )


@router.post("/v1/functions/{function_id}/review/release")
async def release(
    function_id: str, body: ReviewRelease, rt: RuntimeDep, caller: AnnotateKey
) -> Released:
    """Give back your unvoted claims (all, or those on ``itemIds``) for others to take."""
    released = await run_in_threadpool(
        service.release_claims, rt, caller, function_id, body.item_ids
    )
    return Released(released=released)


@router.post("/v1/functions/{function_id}/review/annotate")
async def bulk_annotate(
    function_id: str, body: BulkAnnotate, rt: RuntimeDep, caller: AnnotateKey
) -> Page[ReviewItemPublic]:
    """Annotate many items at once: all succeed or none is written."""
    pairs = [(a.item_id, a.label_name) for a in body.items]
    data = await run_in_threadpool(
        service.annotate_items, rt, caller, function_id, pairs, body.annotated_by
    )
    return Page(data=data, count=len(data))


@router.post(_item + "/annotate")
async def annotate(
    function_id: str, item_id: str, body: ReviewAnnotate, rt: RuntimeDep, caller: AnnotateKey
) -> ReviewItemPublic:
    """Label an item. An admin key's annotation decides: the item becomes a training sample (a
    disputed one is settled). A reviewer key's is a vote: the item becomes a sample when the
    reviews it needs agree, or ``disputed`` when they do not; it goes through the reviewer's
    claim, or takes a free review slot (409 when others hold them all, or when the item was
    decided with another label since: the message names it). Repeats are no-ops."""
    pairs = [(item_id, body.label_name)]
    data = await run_in_threadpool(
        service.annotate_items, rt, caller, function_id, pairs, body.annotated_by
    )
    return data[0]


@router.post(_item + "/skip")
def skip(function_id: str, item_id: str, rt: RuntimeDep, caller: AnnotateKey) -> ReviewItemPublic:
    return service.move_item(rt, caller, function_id, item_id, "skip")


@router.post(_item + "/discard")
def discard(
    function_id: str, item_id: str, rt: RuntimeDep, caller: AnnotateKey
) -> ReviewItemPublic:
    return service.move_item(rt, caller, function_id, item_id, "discard")


@router.get(
    "/v1/review/{item_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}}},
)
def item_image(item_id: str, rt: RuntimeDep, caller: AnnotateKey) -> Response:
    """A captured image; another tenant's item is a 404, as a missing one."""
    with session_scope(rt.engine) as session:
        item = review_queue.get_item(
            session=session, function_id=caller.function_id, item_id=item_id
        )
    data = rt.blobs.get(item.blob)
    return Response(data, media_type=sniff_mime_type(data))

"""Review actions: annotate (the item becomes a sample), skip, discard; index kept in step."""

from __future__ import annotations

from sqlmodel import Session

import review_queue
from service.capture import index_labelled, unindex
from service.functions import get_function, may_create_labels
from service.runtime import Runtime
from service.schemas import ReviewItemPublic
from store import Label, ReviewItem, session_scope, vector_from_bytes


def item_public(session: Session, item: ReviewItem) -> ReviewItemPublic:
    label = session.get(Label, item.label_id) if item.label_id else None
    return ReviewItemPublic.model_validate(
        {
            **item.model_dump(exclude={"embedding"}),
            "label_name": label.name if label else None,
            "image_url": f"/v1/review/{item.id}/image",
        }
    )


def annotate_items(
    rt: Runtime, function_id: str, annotations: list[tuple[str, str]], annotated_by: str | None
) -> list[ReviewItemPublic]:
    """Annotate items in one transaction: all of them or, on any error, none. Items are moved in
    id order, so two bulk annotations of the same items on PostgreSQL wait for each other rather
    than deadlock; the answer keeps the request's order."""
    order = sorted(range(len(annotations)), key=lambda i: annotations[i][0])
    with session_scope(rt.engine) as session:
        may_create = may_create_labels(get_function(session, function_id))
        done = {
            i: review_queue.annotate(
                session=session,
                function_id=function_id,
                item_id=annotations[i][0],
                label_name=annotations[i][1],
                annotated_by=annotated_by,
                allow_new_labels=may_create,
            )
            for i in order
        }
        session.flush()
        results = [done[i] for i in range(len(annotations))]
        public = [item_public(session, r.item) for r in results]
    for result in results:
        unindex(rt, function_id, result.item.id, "pending")
        index_labelled(
            rt, function_id, result.sample.id, vector_from_bytes(result.sample.embedding)
        )
    return public


def move_item(rt: Runtime, function_id: str, item_id: str, action: str) -> ReviewItemPublic:
    """Skip or discard. A skipped item leaves the index (a similar input may be captured again);
    a discarded one stays, so near-duplicates of junk are not captured again."""
    with session_scope(rt.engine) as session:
        get_function(session, function_id)
        mover = review_queue.skip if action == "skip" else review_queue.discard
        item = mover(session=session, function_id=function_id, item_id=item_id)
        public = item_public(session, item)
    if action == "skip":
        unindex(rt, function_id, item_id, "pending")
    return public


def list_public(
    session: Session,
    function_id: str,
    *,
    status: str,
    start: int,
    count: int,
    kind: str | None = None,
) -> tuple[list[ReviewItemPublic], int]:
    get_function(session, function_id)
    items, total = review_queue.list_items(
        session=session,
        function_id=function_id,
        status=status,
        kind=kind,
        start=start,
        count=count,
    )
    return [item_public(session, item) for item in items], total

"""Review items and their transitions: pending -> annotated | skipped | discarded | disputed.

An item becomes at most one sample, ever, whichever processes race for it: each action moves the
item with one conditional update (``UPDATE ... WHERE status IN (...)``), so of two concurrent
annotations (or an annotation and a skip or discard) exactly one moves it and the other reads the
outcome. The first annotation wins: a repeat with the same label answers with the same sample, one
with another label is an :class:`AlreadyAnnotated` naming the label in force (relabelling is an
update of the sample's annotation). Skipped items can still be annotated or discarded later;
discarded and annotated items are final; a disputed item (its reviews disagreed, see
:mod:`review_queue.team`) waits for an admin's annotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

import numpy as np
from sqlalchemy import CursorResult, update
from sqlalchemy import func as sql
from sqlmodel import Session, col, select

from review_queue.errors import (
    AlreadyAnnotated,
    InvalidFilter,
    InvalidTransition,
    ItemNotFound,
)
from store import (
    Function,
    Label,
    LabelChange,
    ReviewItem,
    Sample,
    Via,
    annotation_label,
    as_utc,
    label_sample,
    lock_space,
    utcnow,
    vector_to_bytes,
)

STATUSES = ("pending", "annotated", "skipped", "discarded", "disputed")
# gold: a labelled sample shown blind to one reviewer to measure them (review_queue.team)
ItemKind = Literal["capture", "suspect", "gold"]
KINDS: tuple[str, ...] = get_args(ItemKind)
# The statuses each action moves an item from (skipping a skipped or discarding a discarded item
# is a no-op; annotating an annotated one is a repeat or a conflict, decided by the label).
_FROM = {
    "annotate": ("pending", "skipped", "disputed"),
    "skip": ("pending", "skipped"),
    "discard": ("pending", "skipped", "discarded", "disputed"),
}


@dataclass(frozen=True)
class Annotated:
    """The outcome of an annotate call."""

    item: ReviewItem
    sample: Sample
    label: Label
    # True when this call created the sample (False for a repeat or a correction).
    created: bool


def create_item(
    *,
    session: Session,
    function_id: str,
    blob: str,
    vector: np.ndarray,
    predicted_label: str | None,
    confidence: float | None,
    model_version: int | None,
    reason: str,
    score: float,
    scores: dict[str, Any],
) -> ReviewItem:
    """Persist a captured input as a pending item (the caller has stored the blob)."""
    item = ReviewItem(
        function_id=function_id,
        blob=blob,
        embedding=vector_to_bytes(vector),
        predicted_label=predicted_label,
        confidence=confidence,
        model_version=model_version,
        reason=reason,
        score=score,
        scores=scores,
    )
    session.add(item)
    return item


def lock_captures(*, session: Session, function_id: str) -> None:
    """Make processes sharing the database capture for this function one at a time.

    Takes the function's row lock until the transaction ends, so a process can read
    :func:`capture_times`, check its budget and add an item before another process reads them.
    The lock is PostgreSQL's ``FOR NO KEY UPDATE``: rows that merely reference the function (a
    new sample, a label) do not wait for it. SQLite ignores the lock; there a process's own
    per-function lock serialises its captures, and several processes need PostgreSQL to share a
    budget.
    """
    locked = select(Function.id).where(Function.id == function_id).with_for_update(key_share=True)
    session.exec(locked).first()


def holds_image(*, session: Session, function_id: str, blob: str) -> bool:
    """Whether these exact bytes are already a pending or discarded item or a labelled sample of
    the function (what the capture index holds), whichever process wrote them: capturing them
    again would queue a duplicate."""
    queued = select(ReviewItem.id).where(
        ReviewItem.function_id == function_id,
        ReviewItem.blob == blob,
        col(ReviewItem.status).in_(("pending", "discarded")),
    )
    labelled = select(Sample.id).where(
        Sample.function_id == function_id, Sample.blob == blob, col(Sample.label_id).isnot(None)
    )
    return (
        session.exec(queued.limit(1)).first() is not None
        or session.exec(labelled.limit(1)).first() is not None
    )


def capture_times(*, session: Session, function_id: str, since: datetime) -> list[float]:
    """When this function's items were captured from ``since`` on, oldest first, as POSIX
    seconds, whatever their status now: what the capture budgets count."""
    created = session.exec(
        select(ReviewItem.created_at)
        .where(
            ReviewItem.function_id == function_id,
            ReviewItem.kind == "capture",  # suspects come from training, not from the budget
            col(ReviewItem.created_at) >= since,
        )
        .order_by(col(ReviewItem.created_at))
    ).all()
    return [as_utc(t).timestamp() for t in created]


def get_item(*, session: Session, function_id: str | None, item_id: str) -> ReviewItem:
    """The item, checked to belong to ``function_id`` when one is given."""
    item = session.get(ReviewItem, item_id)
    if item is None or (function_id is not None and item.function_id != function_id):
        raise ItemNotFound(f"review item {item_id} not found")
    return item


def list_items(
    *,
    session: Session,
    function_id: str,
    status: str,
    kind: str | None = None,
    start: int = 0,
    count: int = 50,
) -> tuple[list[ReviewItem], int]:
    """Items in ``status`` (of one ``kind``, or of every kind but gold when None), most
    informative first (then oldest first)."""
    if status not in STATUSES:
        raise InvalidFilter(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    if kind is not None and kind not in KINDS:
        raise InvalidFilter(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    query = select(ReviewItem).where(
        ReviewItem.function_id == function_id, ReviewItem.status == status
    )
    query = query.where(ReviewItem.kind == kind if kind else ReviewItem.kind != "gold")
    total = session.exec(select(sql.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(ReviewItem.score).desc(), col(ReviewItem.created_at), col(ReviewItem.id))
        .offset(start)
        .limit(count)
    ).all()
    return list(rows), total


def counts(*, session: Session, function_id: str) -> dict[str, int]:
    """Number of items per status (every status present, zero included), gold items aside."""
    rows = session.exec(
        select(ReviewItem.status, sql.count())
        .where(ReviewItem.function_id == function_id, ReviewItem.kind != "gold")
        .group_by(ReviewItem.status)
    ).all()
    result = dict.fromkeys(STATUSES, 0)
    result.update({status: n for status, n in rows})
    return result


def annotate(
    *,
    session: Session,
    function_id: str,
    item_id: str,
    label_name: str,
    actors: tuple[str, ...],
    allow_new_labels: bool = True,
    via: Via | None = None,
) -> Annotated:
    """Label an item; the annotation that moves it creates (or, for a suspect, labels) the sample.

    ``actors`` are the people behind the label: one reviewer or admin, or each reviewer whose
    votes agreed. The label history records the path: ``suspect`` for a suspect, ``dispute`` for
    an admin settling a disputed item, ``consensus`` for agreeing reviewers, else ``review``,
    unless ``via`` names it (``weighted``: disagreeing reviews settled by their accuracies).

    Raises:
        AlreadyAnnotated: another annotation, possibly concurrent, gave it another label.
        InvalidTransition: the item was discarded, or a suspect's sample was deleted.
    """
    lock_space(session, function_id)  # the vector a new sample copies is the item's current one
    item = get_item(session=session, function_id=function_id, item_id=item_id)
    if item.kind == "gold":
        raise InvalidTransition(
            f"review item {item.id} is a gold item: its votes measure a reviewer and never make "
            "a sample"
        )
    label = annotation_label(session, function_id, label_name, may_create=allow_new_labels)
    disputed = item.status == "disputed"
    if not _claim(
        session, item, "annotate", "annotated", label_id=label.id, annotated_by=", ".join(actors)
    ):
        return _repeat(session, item, label)
    if via is None:
        if item.kind == "suspect":
            via = "suspect"
        elif disputed:
            via = "dispute"
        else:
            via = "consensus" if len(actors) > 1 else "review"
    change = LabelChange(actors=actors, via=via, review_item_id=item.id)
    sample = session.get(Sample, item.sample_id) if item.sample_id else None
    if item.kind == "suspect" and sample is None:
        raise InvalidTransition(f"cannot annotate review item {item.id}: its sample was deleted")
    created = sample is None
    if sample is None:
        sample = Sample(
            function_id=function_id,
            blob=item.blob,
            # read under the lock: the item may have been loaded before a move rewrote it
            embedding=session.exec(
                select(ReviewItem.embedding).where(ReviewItem.id == item.id)
            ).one(),
            source="review",
            review_item_id=item.id,
        )
        session.add(sample)
    label_sample(session, sample, label, change)
    if item.kind == "suspect":  # a reviewer vouched for this label: not suspected again
        sample.confirmed_label_id = label.id
        session.add(sample)
    item.sample_id = sample.id
    session.add(item)
    return Annotated(item=item, sample=sample, label=label, created=created)


def _repeat(session: Session, item: ReviewItem, label: Label) -> Annotated:
    """An annotation of an item another call already moved: the same label is a no-op."""
    if item.status != "annotated":
        raise InvalidTransition(f"cannot annotate review item {item.id}: it is {item.status}")
    sample = session.get(Sample, item.sample_id) if item.sample_id else None
    if item.label_id != label.id or sample is None:
        in_force = session.get(Label, item.label_id) if item.label_id else None
        raise AlreadyAnnotated(
            f"review item {item.id} is already annotated as "
            f"{in_force.name if in_force else None!r}; change the label through its sample's "
            "annotation"
        )
    return Annotated(item=item, sample=sample, label=label, created=False)


def follow_relabel(*, session: Session, sample: Sample) -> None:
    """After ``sample`` was relabelled through its annotation, the item it was made from names the
    same label: an item and its sample never disagree."""
    if sample.review_item_id is None or sample.label_id is None:
        return
    session.execute(
        update(ReviewItem)
        .where(col(ReviewItem.id) == sample.review_item_id, col(ReviewItem.status) == "annotated")
        .values(label_id=sample.label_id, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def skip(*, session: Session, function_id: str, item_id: str) -> ReviewItem:
    return _move(session, function_id, item_id, "skip", "skipped")


def discard(*, session: Session, function_id: str, item_id: str) -> ReviewItem:
    return _move(session, function_id, item_id, "discard", "discarded")


def _move(session: Session, function_id: str, item_id: str, action: str, status: str) -> ReviewItem:
    item = get_item(session=session, function_id=function_id, item_id=item_id)
    if not _claim(session, item, action, status):
        raise InvalidTransition(f"cannot {action} review item {item.id}: it is {item.status}")
    return item


def _claim(session: Session, item: ReviewItem, action: str, status: str, **values: Any) -> bool:
    """Move ``item`` to ``status`` if it is still in a status ``action`` moves from, in one
    conditional update, and reload it; False when another call moved it first (on PostgreSQL the
    update waits for that call's transaction; on SQLite the write lock orders them)."""
    moved: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(ReviewItem)
        .where(col(ReviewItem.id) == item.id, col(ReviewItem.status).in_(_FROM[action]))
        .values(status=status, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(item)
    return moved.rowcount == 1

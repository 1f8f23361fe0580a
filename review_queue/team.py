"""Review by a team: claims (leases on an item's review slots), votes, consensus and disputes,
and gold items that measure a reviewer.

An item needs ``reviews_needed`` reviews (the policy's ``reviewsPerItem``, or two for an item
drawn for overlap). Each review is a slot: a :class:`~store.ReviewClaim` row unique by (item,
slot) and by (item, reviewer), so whatever the number of reviewers and replicas claiming at once,
one reviewer holds a slot and nobody holds two slots of one item. A claim lasts a lease; an unvoted
claim past it may be taken over with one conditional update. When the last slot's vote comes in
(votes on one item are serialised by a write to the item's row), agreeing votes make the item a
sample (:func:`review_queue.queue.annotate`, through ``consensus`` when two or more people agreed)
and disagreeing ones make it ``disputed``, for an admin to decide.

Gold items are labelled samples shown blind to one reviewer as ordinary items: their votes
measure the reviewer and never change a sample.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, delete, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from review_queue import quality
from review_queue.errors import AlreadyAnnotated, InvalidFilter, InvalidTransition
from review_queue.queue import Annotated, annotate, get_item
from store import (
    Label,
    ReviewClaim,
    ReviewItem,
    Sample,
    Via,
    annotation_label,
    as_utc,
    lock_space,
    utcnow,
)

# Items a claim may hand out: pending ones of these kinds (gold items are made per reviewer).
CLAIMABLE_KINDS = ("capture", "suspect")


@dataclass(frozen=True)
class TeamPolicy:
    """The review settings of a function's policy that claims and votes follow."""

    reviews_per_item: int = 1
    overlap_rate: float = 0.0
    gold_rate: float = 0.0
    lease: timedelta = timedelta(minutes=10)
    # Settle a disagreement by the reviewers' estimated accuracies (Dawid-Skene over the
    # function's votes) when the weighted winner's posterior reaches weighted_min_posterior;
    # otherwise, or when off, a disagreement is a dispute.
    weight_votes: bool = False
    weighted_min_posterior: float = 0.8


@dataclass(frozen=True)
class VoteOutcome:
    """What a vote did: recorded only (more reviews due), decided the item (``annotated``, or a
    gold item scored), or left it ``disputed``."""

    item: ReviewItem
    annotated: Annotated | None = None


class ClaimedByOthers(InvalidTransition):
    """Every review slot of the item is held by other reviewers' unexpired claims."""


def reviews_needed(item: ReviewItem, policy: TeamPolicy) -> int:
    """Reviews the item needs under ``policy``: gold items one; others ``reviews_per_item``, or
    two when the item is drawn for overlap (a fixed draw from its id, so every replica agrees)."""
    if item.kind == "gold":
        return 1
    if policy.reviews_per_item > 1:
        return policy.reviews_per_item
    return 2 if _overlap_draw(item.id) < policy.overlap_rate else 1


def _overlap_draw(item_id: str) -> float:
    digest = hashlib.sha256(f"overlap:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def claim(
    *,
    session: Session,
    function_id: str,
    reviewer: str,
    count: int,
    kind: str | None,
    policy: TeamPolicy,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> tuple[list[ReviewItem], datetime]:
    """Hand ``reviewer`` up to ``count`` pending items, most informative first, reserved to them
    until the returned expiry: first the items they already hold (their leases renewed), then
    new ones no one else holds; fewer when fewer are left. With a ``gold_rate``, each new item is
    in that share a gold item instead, as long as the page holds real work."""
    if kind is not None and kind not in CLAIMABLE_KINDS:
        raise InvalidFilter(f"cannot claim kind {kind!r}; one of {', '.join(CLAIMABLE_KINDS)}")
    now = now or utcnow()
    expires = now + policy.lease
    rng = rng or random.Random()
    held = _renew_own(session, function_id, reviewer, kind, now, expires)[:count]
    items = list(held)
    wanted = count - len(items)
    gold = sum(rng.random() < policy.gold_rate for _ in range(wanted))
    items += _claim_new(session, function_id, reviewer, wanted - gold, kind, policy, now, expires)
    if gold and items:  # gold is mixed into real work, never handed out alone
        golds = _gold_items(session, function_id, reviewer, gold, now, expires)
        for item in golds:  # blind: among the others, not in a block
            items.insert(rng.randint(len(held), len(items)), item)
    return items, expires


def _renew_own(
    session: Session,
    function_id: str,
    reviewer: str,
    kind: str | None,
    now: datetime,
    expires: datetime,
) -> list[ReviewItem]:
    """The reviewer's unvoted claims on items still pending, leases renewed (an expired one only
    if nobody took its slot over, which removes it from the reviewer)."""
    query = (
        select(ReviewItem, ReviewClaim)
        .join(ReviewClaim, col(ReviewClaim.item_id) == col(ReviewItem.id))
        .where(
            ReviewClaim.function_id == function_id,
            ReviewClaim.reviewer == reviewer,
            col(ReviewClaim.voted_at).is_(None),
            ReviewItem.status == "pending",
        )
        .order_by(col(ReviewItem.score).desc(), col(ReviewItem.created_at), col(ReviewItem.id))
    )
    if kind is not None:
        query = query.where(col(ReviewItem.kind).in_((kind, "gold")))
    rows = session.exec(query).all()
    for _, row in rows:
        row.expires_at = expires
        session.add(row)
    return [item for item, _ in rows]


def _claim_new(
    session: Session,
    function_id: str,
    reviewer: str,
    count: int,
    kind: str | None,
    policy: TeamPolicy,
    now: datetime,
    expires: datetime,
) -> list[ReviewItem]:
    taken: list[ReviewItem] = []
    seen: set[str] = set()
    while len(taken) < count:
        batch = _candidates(session, function_id, reviewer, kind, now, seen, 4 * count)
        if not batch:
            break
        for item in batch:
            seen.add(item.id)
            if _take_slot(session, item, reviewer, policy, now, expires):
                taken.append(item)
                if len(taken) == count:
                    break
    return taken


def _candidates(
    session: Session,
    function_id: str,
    reviewer: str,
    kind: str | None,
    now: datetime,
    seen: set[str],
    limit: int,
) -> list[ReviewItem]:
    """Pending items with a slot free or expired (checked again when taken), best first."""
    mine = select(ReviewClaim.item_id).where(ReviewClaim.reviewer == reviewer)
    held = (
        select(func.count())
        .select_from(ReviewClaim)
        .where(
            col(ReviewClaim.item_id) == col(ReviewItem.id),
            (col(ReviewClaim.voted_at).isnot(None)) | (col(ReviewClaim.expires_at) > now),
        )
        .scalar_subquery()
    )
    query = select(ReviewItem).where(
        ReviewItem.function_id == function_id,
        ReviewItem.status == "pending",
        col(ReviewItem.kind).in_((kind,) if kind else CLAIMABLE_KINDS),
        col(ReviewItem.id).not_in(mine),
        # exact: an item's number of reviews is fixed by its first claim, and is at least one
        held < col(ReviewItem.reviews_needed),
    )
    if seen:
        query = query.where(col(ReviewItem.id).not_in(seen))
    best_first = (col(ReviewItem.score).desc(), col(ReviewItem.created_at), col(ReviewItem.id))
    # PostgreSQL: lock the candidates, skipping those another claim or vote holds, so an item's
    # claim rows are only ever written under its lock (no two transactions wait on each other's
    # uncommitted claims: no deadlock) and concurrent claimers spread over the queue.
    locked = (
        query.order_by(*best_first).limit(limit).with_for_update(skip_locked=True, key_share=True)
    )
    return list(session.exec(locked).all())


def _take_slot(
    session: Session,
    item: ReviewItem,
    reviewer: str,
    policy: TeamPolicy,
    now: datetime,
    expires: datetime,
) -> bool:
    """Give ``reviewer`` a free slot of ``item``, or one whose claim expired unvoted; False when
    every slot is held (or another process took the last one first)."""
    rows = session.exec(select(ReviewClaim).where(ReviewClaim.item_id == item.id)).all()
    if not rows and item.reviews_needed != (needed := reviews_needed(item, policy)):
        # the first claim fixes the number of reviews (a policy change applies to new claims)
        session.execute(
            update(ReviewItem)
            .where(col(ReviewItem.id) == item.id)
            .values(reviews_needed=needed)
            .execution_options(synchronize_session=False)
        )
        session.refresh(item)
    used = {row.slot for row in rows}
    for slot in range(item.reviews_needed):
        if slot in used:
            continue
        try:
            with session.begin_nested():
                session.add(
                    ReviewClaim(
                        function_id=item.function_id,
                        item_id=item.id,
                        slot=slot,
                        reviewer=reviewer,
                        claimed_at=now,
                        expires_at=expires,
                    )
                )
        except IntegrityError:  # another reviewer took this slot (or this reviewer another)
            continue
        return True
    for row in rows:
        if row.voted_at is None and as_utc(row.expires_at) <= now:
            moved: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                update(ReviewClaim)
                .where(
                    col(ReviewClaim.id) == row.id,
                    col(ReviewClaim.voted_at).is_(None),
                    col(ReviewClaim.expires_at) <= now,
                )
                .values(reviewer=reviewer, claimed_at=now, expires_at=expires)
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount == 1:
                return True
    return False


def _gold_items(
    session: Session,
    function_id: str,
    reviewer: str,
    count: int,
    now: datetime,
    expires: datetime,
) -> list[ReviewItem]:
    """``count`` gold items for ``reviewer``: labelled samples they have not been shown as gold,
    chosen at random, each with its claim. Fewer (or none) when too few samples are labelled."""
    lock_space(session, function_id)  # the items copy the samples' vectors
    shown = (
        select(ReviewItem.blob)
        .join(ReviewClaim, col(ReviewClaim.item_id) == col(ReviewItem.id))
        .where(
            ReviewItem.function_id == function_id,
            ReviewItem.kind == "gold",
            ReviewClaim.reviewer == reviewer,
        )
    )
    rows = session.exec(
        select(Sample, Label)
        .join(Label, col(Sample.label_id) == col(Label.id))
        .where(Sample.function_id == function_id, col(Sample.blob).not_in(shown))
        .order_by(func.random())
        .limit(count)
    ).all()
    items = []
    for sample, label in rows:
        item = ReviewItem(
            function_id=function_id,
            kind="gold",
            blob=sample.blob,
            embedding=sample.embedding,
            given_label=label.name,
            reason="gold",
            score=0.0,
            scores={},
            created_at=now,
            updated_at=now,
        )
        session.add(item)
        session.flush()
        session.add(
            ReviewClaim(
                function_id=function_id,
                item_id=item.id,
                slot=0,
                reviewer=reviewer,
                claimed_at=now,
                expires_at=expires,
            )
        )
        items.append(item)
    return items


def release(
    *, session: Session, function_id: str, reviewer: str, item_ids: Sequence[str] | None = None
) -> int:
    """Give back the reviewer's unvoted claims (all, or on ``item_ids``); how many were released.
    Released gold items are dropped: they were made for this reviewer."""
    open_claims = [
        col(ReviewClaim.function_id) == function_id,
        col(ReviewClaim.reviewer) == reviewer,
        col(ReviewClaim.voted_at).is_(None),
    ]
    if item_ids is not None:
        open_claims.append(col(ReviewClaim.item_id).in_(item_ids))
    gold_ids = session.exec(
        select(ReviewItem.id).where(
            col(ReviewItem.id).in_(select(ReviewClaim.item_id).where(*open_claims)),
            ReviewItem.kind == "gold",
            ReviewItem.status == "pending",
        )
    ).all()
    released: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(ReviewClaim).where(*open_claims)
    )
    if gold_ids:
        session.execute(delete(ReviewItem).where(col(ReviewItem.id).in_(gold_ids)))
    return released.rowcount


def vote(
    *,
    session: Session,
    function_id: str,
    item_id: str,
    reviewer: str,
    label_name: str,
    policy: TeamPolicy,
    allow_new_labels: bool = True,
    accuracies: Mapping[str, float] | None = None,
    now: datetime | None = None,
) -> VoteOutcome:
    """Record ``reviewer``'s label for the item, through their claim (or a free slot when they
    hold none); the last vote due decides the item. With the policy's ``weight_votes``, a
    disagreement is settled by ``accuracies`` (the reviewers' estimates; the caller fits them
    outside this transaction) when it can be.

    Raises:
        AlreadyAnnotated: the item was decided with another label (the message names it).
        ClaimedByOthers: other reviewers hold every slot.
        InvalidTransition: the item is discarded or disputed, or the reviewer voted otherwise.
    """
    now = now or utcnow()
    item = get_item(session=session, function_id=function_id, item_id=item_id)
    if item.kind == "gold" and _claim_of(session, item.id, reviewer) is None:
        raise InvalidTransition(f"review item {item.id} is not claimed by {reviewer!r}")
    label = annotation_label(session, function_id, label_name, may_create=allow_new_labels)
    # A write to the item's row first: votes on one item wait for each other (PostgreSQL's row
    # lock, SQLite's write lock), so the last vote sees every earlier one.
    locked: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(ReviewItem)
        .where(col(ReviewItem.id) == item.id, col(ReviewItem.status).in_(("pending", "skipped")))
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(item)
    if locked.rowcount == 0:
        return _after_decision(session, item, reviewer, label)
    own = _claim_of(session, item.id, reviewer)
    if own is None:
        if not _take_slot(session, item, reviewer, policy, now, now + policy.lease):
            raise ClaimedByOthers(_held_message(session, item, now))
        own = _claim_of(session, item.id, reviewer)
        assert own is not None
    elif own.voted_at is not None:
        if own.label_id == label.id:
            return VoteOutcome(item=item)
        raise InvalidTransition(
            f"{reviewer!r} already voted {_label_name(session, own.label_id)!r} on review item "
            f"{item.id}; it waits for the other reviews"
        )
    own.label_id = label.id
    own.voted_at = now
    session.add(own)
    session.flush()
    return _decide_if_complete(session, item, label, policy, accuracies or {})


def _claim_of(session: Session, item_id: str, reviewer: str) -> ReviewClaim | None:
    """The reviewer's claim (voted or not) on the item, if they hold one."""
    return session.exec(
        select(ReviewClaim).where(ReviewClaim.item_id == item_id, ReviewClaim.reviewer == reviewer)
    ).first()


def _after_decision(session: Session, item: ReviewItem, reviewer: str, label: Label) -> VoteOutcome:
    """A vote on an item no longer open: a repeat of the decided label is a no-op; anything else
    says what happened to it."""
    if item.status == "annotated":
        if item.label_id == label.id:
            if item.kind == "gold":
                return VoteOutcome(item=item)
            sample = session.get(Sample, item.sample_id) if item.sample_id else None
            if sample is not None:
                return VoteOutcome(
                    item=item,
                    annotated=Annotated(item=item, sample=sample, label=label, created=False),
                )
        raise AlreadyAnnotated(
            f"review item {item.id} is already annotated as "
            f"{_label_name(session, item.label_id)!r}"
            + (f" by {item.annotated_by!r}" if item.annotated_by else "")
        )
    if item.status == "disputed":
        raise InvalidTransition(
            f"review item {item.id} is disputed: its reviews disagree and an admin decides"
        )
    raise InvalidTransition(f"cannot annotate review item {item.id}: it is {item.status}")


def _decide_if_complete(
    session: Session,
    item: ReviewItem,
    label: Label,
    policy: TeamPolicy,
    accuracies: Mapping[str, float],
) -> VoteOutcome:
    votes = session.exec(
        select(ReviewClaim)
        .where(ReviewClaim.item_id == item.id, col(ReviewClaim.voted_at).isnot(None))
        .order_by(col(ReviewClaim.voted_at), col(ReviewClaim.id))
    ).all()
    if len(votes) < item.reviews_needed:
        return VoteOutcome(item=item)
    voters = tuple(v.reviewer for v in votes)
    if item.kind == "gold":  # scored against the answer; never a sample
        _finish(session, item, "annotated", label_id=label.id, annotated_by=voters[0])
        return VoteOutcome(item=item)
    winner: str = label.name
    via: Via | None = None
    if len({v.label_id for v in votes}) > 1:
        weighted = (
            _weighted_winner(session, item, votes, policy, accuracies)
            if policy.weight_votes
            else None
        )
        if weighted is None:
            _finish(session, item, "disputed", annotated_by=None)
            return VoteOutcome(item=item)
        winner, via = weighted, "weighted"
    decided = annotate(
        session=session,
        function_id=item.function_id,
        item_id=item.id,
        label_name=winner,
        actors=voters,
        via=via,
    )
    return VoteOutcome(item=decided.item, annotated=decided)


def _weighted_winner(
    session: Session,
    item: ReviewItem,
    votes: Sequence[ReviewClaim],
    policy: TeamPolicy,
    accuracies: Mapping[str, float],
) -> str | None:
    """The label the reviewers' estimated accuracies favour, if its posterior reaches the
    policy's bar; None sends the item to a person. A reviewer without an estimate counts as
    0.8."""
    names = _label_names(session, item.function_id)
    mine = [(v.reviewer, names[v.label_id]) for v in votes if v.label_id in names]
    settled = quality.weighted_settle(mine, accuracies, n_labels=max(len(names), 2))
    return settled.label if settled.posterior >= policy.weighted_min_posterior else None


def _label_names(session: Session, function_id: str) -> dict[str | None, str]:
    rows = session.exec(select(Label.id, Label.name).where(Label.function_id == function_id))
    return dict(rows.all())


def _finish(session: Session, item: ReviewItem, status: str, **values: Any) -> None:
    session.execute(
        update(ReviewItem)
        .where(col(ReviewItem.id) == item.id)
        .values(status=status, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(item)


def _held_message(session: Session, item: ReviewItem, now: datetime) -> str:
    holders = session.exec(select(ReviewClaim).where(ReviewClaim.item_id == item.id)).all()
    names = ", ".join(
        f"{h.reviewer} (voted)"
        if h.voted_at
        else f"{h.reviewer} until {as_utc(h.expires_at):%H:%M:%S}Z"
        for h in holders
    )
    return f"review item {item.id} is claimed by other reviewers: {names}"


def _label_name(session: Session, label_id: str | None) -> str | None:
    label = session.get(Label, label_id) if label_id else None
    return label.name if label else None


def votes_of(session: Session, item_ids: Sequence[str]) -> dict[str, list[tuple[str, str | None]]]:
    """Item id -> its submitted votes as (reviewer, label name), in vote order."""
    if not item_ids:
        return {}
    rows = session.exec(
        select(ReviewClaim.item_id, ReviewClaim.reviewer, Label.name)
        .join(Label, col(ReviewClaim.label_id) == col(Label.id), isouter=True)
        .where(col(ReviewClaim.item_id).in_(item_ids), col(ReviewClaim.voted_at).isnot(None))
        .order_by(col(ReviewClaim.voted_at), col(ReviewClaim.id))
    ).all()
    result: dict[str, list[tuple[str, str | None]]] = {}
    for item_id, reviewer, name in rows:
        result.setdefault(item_id, []).append((reviewer, name))
    return result

"""Review actions: claim and release pages, annotate (a reviewer's vote, or an admin's decision),
skip, discard; the capture index kept in step.

A key with the admin scope decides: its annotation makes the sample at once (or settles a
disputed item). A reviewer key (annotate scope, no admin) votes: the item becomes a sample when
the votes it needs agree (see :mod:`review_queue.team`).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from sqlmodel import Session

import review_queue
from capture import CapturePolicy
from service.auth import Principal
from service.capture import index_labelled, unindex
from service.errors import Forbidden
from service.functions import get_function, may_create_labels
from service.reviewers import accuracies as reviewer_accuracies
from service.runtime import Runtime
from service.schemas import ClaimedPage, ReviewItemPublic, ReviewVote
from service.serving import serving_snapshot
from store import Function, Label, ReviewItem, session_scope, vector_from_bytes


def team_policy(function: Function) -> review_queue.TeamPolicy:
    policy = CapturePolicy.from_dict(function.capture_policy or {})
    return review_queue.TeamPolicy(
        reviews_per_item=policy.reviews_per_item,
        overlap_rate=policy.overlap_rate,
        gold_rate=policy.gold_rate,
        lease=timedelta(minutes=policy.claim_minutes),
        weight_votes=policy.weight_votes,
        weighted_min_posterior=policy.weighted_min_posterior,
    )


def item_public(session: Session, item: ReviewItem, principal: Principal) -> ReviewItemPublic:
    """The item as ``principal`` may see it: to a reviewer key a gold item looks like any
    capture (its answer hidden), and nobody's votes are shown; admin keys see everything."""
    admin = principal.is_admin
    label = session.get(Label, item.label_id) if item.label_id else None
    values = {
        **item.model_dump(exclude={"embedding"}),
        "label_name": label.name if label else None,
        "image_url": f"/v1/review/{item.id}/image",
    }
    if admin:
        votes = review_queue.votes_of(session, [item.id]).get(item.id, [])
        values["reviews"] = [ReviewVote(reviewer=r, label_name=n) for r, n in votes]
    elif item.kind == "gold":
        values.update(kind="capture", given_label=None)
        if item.reason == "gold":  # no capture on the page to borrow a reason from
            values["reason"] = "uncertain"
    return ReviewItemPublic.model_validate(values)


def annotate_items(
    rt: Runtime,
    principal: Principal,
    function_id: str,
    annotations: list[tuple[str, str]],
    annotated_by: str | None,
) -> list[ReviewItemPublic]:
    """Annotate items in one transaction: all of them or, on any error, none. An admin key's
    annotations decide; a reviewer key's are votes. Items are moved in id order, so two bulk
    annotations of the same items on PostgreSQL wait for each other rather than deadlock; the
    answer keeps the request's order."""
    actor = principal.actor(annotated_by)
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
        policy, may_create = team_policy(function), may_create_labels(function)
    weights = None
    if policy.weight_votes and not principal.is_admin:  # fitted before the votes' transaction
        weights = reviewer_accuracies(rt, function_id)
    order = sorted(range(len(annotations)), key=lambda i: annotations[i][0])
    with session_scope(rt.engine) as session:  # items of a function deleted since are 404s
        outcomes: dict[int, review_queue.VoteOutcome] = {}
        for i in order:
            item_id, label_name = annotations[i]
            if principal.is_admin:
                decided = review_queue.annotate(
                    session=session,
                    function_id=function_id,
                    item_id=item_id,
                    label_name=label_name,
                    actors=(actor,),
                    allow_new_labels=may_create,
                )
                outcomes[i] = review_queue.VoteOutcome(item=decided.item, annotated=decided)
            else:
                outcomes[i] = review_queue.vote(
                    session=session,
                    function_id=function_id,
                    item_id=item_id,
                    reviewer=actor,
                    label_name=label_name,
                    policy=policy,
                    allow_new_labels=may_create,
                    accuracies=weights,
                )
        session.flush()
        results = [outcomes[i] for i in range(len(annotations))]
        public = [item_public(session, r.item, principal) for r in results]
    for result in results:
        if result.annotated is not None:
            unindex(rt, function_id, result.item.id, "pending")
            sample = result.annotated.sample
            index_labelled(rt, function_id, sample.id, vector_from_bytes(sample.embedding))
    return public


def claim_page(
    rt: Runtime, principal: Principal, function_id: str, *, count: int, kind: str | None
) -> ClaimedPage:
    """Up to ``count`` pending items reserved to the caller (see :func:`review_queue.claim`)."""
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
        items, expires = review_queue.claim(
            session=session,
            function_id=function_id,
            reviewer=principal.actor(),
            count=count,
            kind=kind,
            policy=team_policy(function),
        )
        _disguise_gold(rt, session, function_id, items)
        session.flush()
        data = [item_public(session, item, principal) for item in items]
    return ClaimedPage(data=data, count=len(data), expires_at=expires, reviewer=principal.actor())


def _disguise_gold(
    rt: Runtime, session: Session, function_id: str, items: list[ReviewItem]
) -> None:
    """Make new gold items look like the captures around them: the serving model's prediction,
    and the score of a capture on the page (or of the best pending one)."""
    golds = [i for i in items if i.kind == "gold" and i.model_version is None and not i.scores]
    if not golds:
        return
    model = serving_snapshot(rt, function_id).model
    real = [i for i in items if i.kind != "gold"] or review_queue.list_items(
        session=session, function_id=function_id, status="pending", count=1
    )[0]
    for n, item in enumerate(golds):
        if model is not None:
            proba = model.head.predict_proba(vector_from_bytes(item.embedding)[None, :])[0]
            best = int(np.argmax(proba))
            item.predicted_label, item.confidence = model.labels[best], float(proba[best])
            item.model_version = model.version
        if real:
            like = real[n % len(real)]
            item.score, item.scores, item.reason = like.score, dict(like.scores), like.reason
        session.add(item)


def release_claims(
    rt: Runtime, principal: Principal, function_id: str, item_ids: list[str] | None
) -> int:
    with session_scope(rt.engine) as session:
        get_function(session, function_id)
        return review_queue.release(
            session=session, function_id=function_id, reviewer=principal.actor(), item_ids=item_ids
        )


def move_item(
    rt: Runtime, principal: Principal, function_id: str, item_id: str, action: str
) -> ReviewItemPublic:
    """Skip or discard. A skipped item leaves the index (a similar input may be captured again);
    a discarded one stays, so near-duplicates of junk are not captured again. A gold item is
    only released: it was made for this reviewer."""
    with session_scope(rt.engine) as session:
        get_function(session, function_id)
        item = review_queue.get_item(session=session, function_id=function_id, item_id=item_id)
        if item.kind == "gold":
            public = item_public(session, item, principal)
            review_queue.release(
                session=session,
                function_id=function_id,
                reviewer=principal.actor(),
                item_ids=[item_id],
            )
            return public
        mover = review_queue.skip if action == "skip" else review_queue.discard
        item = mover(session=session, function_id=function_id, item_id=item_id)
        review_queue.release(
            session=session, function_id=function_id, reviewer=principal.actor(), item_ids=[item_id]
        )
        public = item_public(session, item, principal)
    if action == "skip":
        unindex(rt, function_id, item_id, "pending")
    return public


def list_public(
    session: Session,
    principal: Principal,
    function_id: str,
    *,
    status: str,
    start: int,
    count: int,
    kind: str | None = None,
) -> tuple[list[ReviewItemPublic], int]:
    get_function(session, function_id)
    if not principal.is_admin and (status == "disputed" or kind == "gold"):
        raise Forbidden(
            "disputed and gold items are listed to admin keys only: "
            + ("an admin settles disputes" if status == "disputed" else "gold answers are blind")
        )
    items, total = review_queue.list_items(
        session=session,
        function_id=function_id,
        status=status,
        kind=kind,
        start=start,
        count=count,
    )
    return [item_public(session, item, principal) for item in items], total

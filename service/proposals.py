"""New-class proposals: cluster novel review items, accept one as a new label, or dismiss it.

Candidates are review items still waiting for a label (pending or skipped) that were captured
as novel or that a reviewer marked "none of these labels", less those of dismissed proposals.
Proposals are computed from them whenever they are read (see :mod:`capture.proposals`), so
the list always reflects the captures so far. Accepting goes through the review use case
(:func:`service.review.annotate_items`), so the items become samples the normal way.
"""

from __future__ import annotations

import numpy as np
from sqlmodel import Session, col, or_, select

import review_queue
from capture import CapturePolicy
from capture.proposals import Proposal, class_spread, cluster_novel_items
from review_queue import InvalidTransition
from service.auth import Principal
from service.errors import Conflict, NotFound, Unprocessable
from service.functions import get_function
from service.labelled import labelled_data
from service.novelty import novelty_model
from service.review import annotate_items, item_public, move_item
from service.runtime import Runtime
from service.schemas import ReviewItemPublic
from store import (
    NovelMark,
    ReviewItem,
    find_label,
    normalize_label_name,
    session_scope,
    utcnow,
    vector_from_bytes,
)

# Most recent candidates clustered (agglomerative clustering is quadratic in their number).
MAX_CANDIDATES = 3000


def _candidates(session: Session, function_id: str) -> list[ReviewItem]:
    marked = select(NovelMark.item_id).where(
        NovelMark.function_id == function_id, col(NovelMark.marked_novel)
    )
    dismissed = select(NovelMark.item_id).where(
        NovelMark.function_id == function_id, col(NovelMark.dismissed)
    )
    rows = session.exec(
        select(ReviewItem)
        .where(
            ReviewItem.function_id == function_id,
            ReviewItem.kind == "capture",
            col(ReviewItem.status).in_(("pending", "skipped")),
            or_(ReviewItem.reason == "novel", col(ReviewItem.id).in_(marked)),
            col(ReviewItem.id).not_in(dismissed),
        )
        .order_by(col(ReviewItem.created_at).desc(), col(ReviewItem.id).desc())
        .limit(MAX_CANDIDATES)
    ).all()
    return list(reversed(rows))  # oldest first: a proposal's id comes from its oldest member


def list_proposals(rt: Runtime, function_id: str) -> list[Proposal]:
    """The function's proposals now, largest first."""
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
        policy = CapturePolicy.from_dict(function.capture_policy or {})
        items = _candidates(session, function_id)
    if len(items) < policy.proposal_min_size:
        return []
    model = novelty_model(rt, function)
    if model is not None:
        spread, means = model.class_spread, model.class_means
    else:  # too few labelled samples for a novelty model: measure what there is
        data = labelled_data(rt, function_id)
        vectors, names = data.vectors, data.names
        spread = class_spread(vectors, names) if names else float("nan")
        means = {n: vectors[np.asarray(names) == n].mean(axis=0) for n in set(names)}
    dims = {len(item.embedding) for item in items}
    if len(dims) != 1 or not np.isfinite(spread):
        return []
    return cluster_novel_items(
        [item.id for item in items],
        np.stack([vector_from_bytes(item.embedding) for item in items]),
        max_distance=policy.proposal_tightness * spread,
        min_size=policy.proposal_min_size,
        class_means=means,
    )


def get_proposal(rt: Runtime, function_id: str, proposal_id: str) -> Proposal:
    """One proposal as it stands now (404 if no proposal has that id any more)."""
    for proposal in list_proposals(rt, function_id):
        if proposal.id == proposal_id:
            return proposal
    raise NotFound(
        f"proposal {proposal_id} not found in function {function_id}: it was accepted or "
        "dismissed, or its oldest item left it; list the proposals again"
    )


def accept_proposal(
    rt: Runtime,
    function_id: str,
    proposal_id: str,
    *,
    label_name: str,
    exclude_item_ids: list[str],
    principal: Principal,
    annotated_by: str | None,
) -> tuple[Proposal, list[ReviewItemPublic]]:
    """Create ``label_name`` and annotate the proposal's items (less those excluded) with it."""
    proposal = get_proposal(rt, function_id, proposal_id)
    name = normalize_label_name(label_name)
    with session_scope(rt.engine) as session:
        if find_label(session, function_id, name) is not None:
            raise Conflict(
                f"label {name!r} already exists in function {function_id}: a proposal becomes a "
                "new label; annotate its items in the review queue to use an existing one"
            )
    strangers = sorted(set(exclude_item_ids) - set(proposal.item_ids))
    if strangers:
        raise Unprocessable(f"excludeItemIds not in proposal {proposal_id}: {', '.join(strangers)}")
    excluded = set(exclude_item_ids)
    chosen = [item_id for item_id in proposal.item_ids if item_id not in excluded]
    if not chosen:
        raise Unprocessable("excludeItemIds leaves no item of the proposal to annotate")
    annotated = annotate_items(
        rt, principal, function_id, [(i, name) for i in chosen], annotated_by
    )
    rt.novelty.invalidate(function_id)  # a new class: novelty is measured against it from now
    return proposal, annotated


def dismiss_proposal(rt: Runtime, function_id: str, proposal_id: str) -> Proposal:
    """Keep the proposal's items out of every proposal from now on (they stay in review)."""
    proposal = get_proposal(rt, function_id, proposal_id)
    with session_scope(rt.engine) as session:
        for item_id in proposal.item_ids:
            mark = session.get(NovelMark, item_id) or NovelMark(
                item_id=item_id, function_id=function_id
            )
            mark.dismissed = True
            mark.updated_at = utcnow()
            session.add(mark)
    return proposal


def mark_novel(
    rt: Runtime, principal: Principal, function_id: str, item_id: str
) -> ReviewItemPublic:
    """A reviewer's "none of these labels": the item leaves the pending queue (skipped) and
    joins the candidates of new-class proposals. A gold item is only released (it is blind)."""
    with session_scope(rt.engine) as session:
        get_function(session, function_id)
        item = review_queue.get_item(session=session, function_id=function_id, item_id=item_id)
        if item.kind == "gold":
            return move_item(rt, principal, function_id, item_id, "skip")
        if item.kind != "capture" or item.status not in ("pending", "skipped"):
            raise InvalidTransition(
                f"cannot mark review item {item_id} as novel: it is a {item.status} {item.kind} "
                "(only pending or skipped captures can be)"
            )
        mark = session.get(NovelMark, item_id) or NovelMark(
            item_id=item_id, function_id=function_id
        )
        mark.marked_novel = True
        mark.updated_at = utcnow()
        session.add(mark)
    if item.status == "pending":
        return move_item(rt, principal, function_id, item_id, "skip")
    with session_scope(rt.engine) as session:
        return item_public(
            session,
            review_queue.get_item(session=session, function_id=None, item_id=item_id),
            principal,
        )

"""The calls of the review queue (a team's claims and reviewers too), new-label proposals, the
capture policy and the dashboard."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from winnow_client.calls.base import Call, fn_path, many, one, paged, raw
from winnow_client.models import (
    AcceptedProposal,
    CapturePolicy,
    ClaimedPage,
    Dashboard,
    Page,
    Proposal,
    ReviewCounts,
    Reviewer,
    ReviewItem,
    SearchHit,
    camel_case,
)


def review_items(
    function_id: str,
    *,
    status: str = "pending",
    kind: str | None = None,
    start_index: int = 0,
    count: int = 50,
) -> Call[Page[ReviewItem]]:
    """Items in a status, most informative first; ``kind`` is capture or suspect (both: None)."""
    params: dict[str, Any] = {"status": status, "startIndex": start_index, "count": count}
    if kind is not None:
        params["kind"] = kind
    return Call("GET", fn_path(function_id, "review"), paged(ReviewItem), params=params)


def review_counts(function_id: str) -> Call[ReviewCounts]:
    return Call("GET", fn_path(function_id, "review", "counts"), one(ReviewCounts))


def claim_review(function_id: str, count: int = 10, kind: str | None = None) -> Call[ClaimedPage]:
    """Reserve up to ``count`` pending items (1 to 100) to the key's reviewer until
    ``expires_at``: the ones already held first (their leases renewed), then the most informative
    ones nobody else holds. ``kind``: capture or suspect (both: None)."""
    body = {"count": count, "kind": kind}
    return Call("POST", fn_path(function_id, "review", "claim"), one(ClaimedPage), json=body)


def release_review(function_id: str, item_ids: Iterable[str] | None = None) -> Call[int]:
    """Give back the key's unvoted claims (all, or those on ``item_ids``); how many were."""
    body = {"itemIds": None if item_ids is None else list(item_ids)}
    path = fn_path(function_id, "review", "release")
    return Call("POST", path, _released, json=body)


def _released(body: Any) -> int:
    return int(body["released"])


def reviewers(function_id: str) -> Call[list[Reviewer]]:
    """Each reviewer's votes, disputes, estimated accuracy, kappa, gold accuracy and items per
    hour, most votes first (admin keys)."""
    return Call("GET", fn_path(function_id, "reviewers"), many(Reviewer))


def annotate(
    function_id: str, item_id: str, label: str, *, annotated_by: str | None = None
) -> Call[ReviewItem]:
    body = {"labelName": label, "annotatedBy": annotated_by}
    path = fn_path(function_id, "review", item_id, "annotate")
    return Call("POST", path, one(ReviewItem), json=body)


def annotate_many(
    function_id: str,
    labels: Mapping[str, str] | Iterable[tuple[str, str]],
    *,
    annotated_by: str | None = None,
) -> Call[list[ReviewItem]]:
    """Label many items (``{item_id: label}``) in one request: all are written or none."""
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    items = [{"itemId": item_id, "labelName": label} for item_id, label in pairs]
    body = {"items": items, "annotatedBy": annotated_by}
    return Call("POST", fn_path(function_id, "review", "annotate"), many(ReviewItem), json=body)


def skip(function_id: str, item_id: str) -> Call[ReviewItem]:
    return Call("POST", fn_path(function_id, "review", item_id, "skip"), one(ReviewItem))


def discard(function_id: str, item_id: str) -> Call[ReviewItem]:
    return Call("POST", fn_path(function_id, "review", item_id, "discard"), one(ReviewItem))


def mark_novel(function_id: str, item_id: str) -> Call[ReviewItem]:
    """None of the function's labels fits the item: it is skipped and joins new-class proposals."""
    return Call("POST", fn_path(function_id, "review", item_id, "novel"), one(ReviewItem))


def proposals(function_id: str) -> Call[list[Proposal]]:
    """Clusters of novel review items that may be a missing label, largest first."""
    return Call("GET", fn_path(function_id, "proposals"), many(Proposal))


def accept_proposal(
    function_id: str,
    proposal_id: str,
    label: str,
    *,
    exclude_item_ids: Iterable[str] = (),
    annotated_by: str | None = None,
) -> Call[AcceptedProposal]:
    """Create ``label`` and annotate the proposal's items (less ``exclude_item_ids``) with it."""
    body = {
        "labelName": label,
        "excludeItemIds": list(exclude_item_ids),
        "annotatedBy": annotated_by,
    }
    path = fn_path(function_id, "proposals", proposal_id, "accept")
    return Call("POST", path, one(AcceptedProposal), json=body)


def dismiss_proposal(function_id: str, proposal_id: str) -> Call[Proposal]:
    """Not a new label: its items stay in review and never join a proposal again."""
    return Call("POST", fn_path(function_id, "proposals", proposal_id, "dismiss"), one(Proposal))


def similar_to_item(function_id: str, item_id: str, *, count: int = 10) -> Call[list[SearchHit]]:
    """The labelled samples most similar to a review item (what a reviewer compares it with)."""
    path = fn_path(function_id, "review", item_id, "similar")
    return Call("GET", path, many(SearchHit), params={"count": count})


def review_image(item_id: str) -> Call[bytes]:
    path = "/v1/review/" + quote(item_id, safe="") + "/image"
    return Call("GET", path, raw, binary=True)


def capture_policy(function_id: str) -> Call[CapturePolicy]:
    return Call("GET", fn_path(function_id, "capture-policy"), one(CapturePolicy))


def set_capture_policy(function_id: str, **changes: Any) -> Call[CapturePolicy]:
    """Change some policy settings (snake_case or camelCase names); the rest keep their values."""
    body = {camel_case(name): value for name, value in changes.items()}
    return Call("PUT", fn_path(function_id, "capture-policy"), one(CapturePolicy), json=body)


def dashboard(function_id: str, *, hours: int | None = None) -> Call[Dashboard]:
    """Label counts and the review activity over the last ``hours`` (the service's default)."""
    params = {"hours": hours} if hours is not None else None
    return Call("GET", fn_path(function_id, "dashboard"), one(Dashboard), params=params)


def chart_png(function_id: str, chart: str, *, hours: int | None = None) -> Call[bytes]:
    """A dashboard chart as PNG: ``model-history``, ``activity`` or ``labels``."""
    params = {"hours": hours} if hours is not None else None
    path = fn_path(function_id, "charts", f"{chart}.png")
    return Call("GET", path, raw, params=params, binary=True)

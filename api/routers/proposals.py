"""New-class proposals (list, accept, dismiss) and a reviewer's "none of these labels"."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import AnnotateKey, RuntimeDep
from capture.proposals import Proposal
from service import proposals as service
from service.schemas import Page, ProposalAccept, ProposalAccepted, ProposalPublic, ReviewItemPublic
from store import normalize_label_name

router = APIRouter(tags=["proposals"])
_proposals = "/v1/functions/{function_id}/proposals"


def _public(proposal: Proposal) -> ProposalPublic:
    return ProposalPublic(
        id=proposal.id,
        size=proposal.size,
        item_ids=proposal.item_ids,
        image_urls=[f"/v1/review/{item_id}/image" for item_id in proposal.item_ids],
        nearest_label=proposal.nearest_label,
        nearest_similarity=proposal.nearest_similarity,
        spread=proposal.spread,
    )


@router.get(_proposals)
async def list_proposals(function_id: str, rt: RuntimeDep, _: AnnotateKey) -> Page[ProposalPublic]:
    """Clusters of novel review items large and tight enough to be a missing label (see the
    capture policy's proposalMinSize and proposalTightness), largest first, as they stand now."""
    proposals = await run_in_threadpool(service.list_proposals, rt, function_id)
    return Page(data=[_public(p) for p in proposals], count=len(proposals))


@router.post(_proposals + "/{proposal_id}/accept")
async def accept(
    function_id: str, proposal_id: str, body: ProposalAccept, rt: RuntimeDep, caller: AnnotateKey
) -> ProposalAccepted:
    """Create the label ``labelName`` (409 if it exists) and annotate the proposal's items with
    it, less ``excludeItemIds``: they become samples as any review annotation does."""
    proposal, items = await run_in_threadpool(
        lambda: service.accept_proposal(
            rt,
            function_id,
            proposal_id,
            label_name=body.label_name,
            exclude_item_ids=body.exclude_item_ids,
            principal=caller,
            annotated_by=body.annotated_by,
        )
    )
    return ProposalAccepted(
        proposal=_public(proposal),
        label_name=normalize_label_name(body.label_name),
        data=items,
        count=len(items),
    )


@router.post(_proposals + "/{proposal_id}/dismiss")
async def dismiss(
    function_id: str, proposal_id: str, rt: RuntimeDep, _: AnnotateKey
) -> ProposalPublic:
    """Not a new label: its items stay in review but never join a proposal again."""
    proposal = await run_in_threadpool(service.dismiss_proposal, rt, function_id, proposal_id)
    return _public(proposal)


@router.post("/v1/functions/{function_id}/review/{item_id}/novel")
def mark_novel(
    function_id: str, item_id: str, rt: RuntimeDep, caller: AnnotateKey
) -> ReviewItemPublic:
    """None of the function's labels fits: the item is skipped and joins new-class proposals."""
    return service.mark_novel(rt, caller, function_id, item_id)

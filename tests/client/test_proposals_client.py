"""The client's new-class proposal calls against a live service: list, accept, dismiss, mark."""

from __future__ import annotations

import httpx
from winnow_client import AcceptedProposal, Client, NotFound, Proposal

from tests.conftest import (
    ADMIN_KEY,
    AUTH,
    BLUE,
    GREEN,
    PROPOSAL_POLICY,
    RED,
    png_bytes,
    wait_for_novelty,
)

POLICY = {**PROPOSAL_POLICY, "proposalMinSize": 3}


def _green_items(client: Client, fid: str, seeds: range) -> list[str]:
    predictions = [client.invoke(fid, png_bytes(GREEN, seed=seed)) for seed in seeds]
    return [p.capture.item_id for p in predictions if p.capture and p.capture.reason == "novel"]


def test_proposals_list_accept_dismiss_and_mark(live_url: str) -> None:
    with Client(live_url, api_key=ADMIN_KEY) as client:
        fid = client.create_function("colours").id
        for i in range(8):
            client.create_sample(fid, png_bytes(RED, seed=i), label="red")
            client.create_sample(fid, png_bytes(BLUE, seed=i), label="blue")
        client.train(fid)
        client.set_capture_policy(fid, **POLICY)
        with httpx.Client(base_url=live_url, headers=AUTH) as http:
            wait_for_novelty(http, fid)  # fitted by the serving worker after the deploy

        first = _green_items(client, fid, range(100, 104))
        (proposal,) = client.proposals(fid)
        assert isinstance(proposal, Proposal) and set(proposal.item_ids) == set(first)
        dismissed = client.dismiss_proposal(fid, proposal.id)
        assert dismissed.id == proposal.id and client.proposals(fid) == []

        second = _green_items(client, fid, range(200, 204))
        (proposal,) = client.proposals(fid)
        assert set(proposal.item_ids) == set(second)
        accepted = client.accept_proposal(
            fid, proposal.id, "green", exclude_item_ids=[second[0]], annotated_by="ann"
        )
        assert isinstance(accepted, AcceptedProposal)
        assert accepted.label_name == "green" and accepted.count == len(second) - 1
        assert {item.label_name for item in accepted.data} == {"green"}
        assert accepted.proposal.id == proposal.id
        try:
            client.accept_proposal(fid, proposal.id, "green again")
        except NotFound:
            pass
        else:
            raise AssertionError("an accepted proposal is gone")

        marked = client.mark_novel(fid, second[0])
        assert marked.status == "skipped"

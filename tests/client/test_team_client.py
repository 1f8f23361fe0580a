"""The client's calls for review by a team against a live service: claims, releases, votes that
agree or dispute, and the reviewers' table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from winnow_client import (
    AsyncClient,
    ClaimedPage,
    Client,
    Forbidden,
    Reviewer,
    ReviewVote,
    Unprocessable,
)

from tests.client.test_client import colour_samples
from tests.conftest import ADMIN_KEY, png_bytes


def _captured_items(winnow: Client, fid: str, count: int) -> list[str]:
    ids = []
    for seed in range(count):
        prediction = winnow.invoke(fid, png_bytes((40 + 60 * seed, 200, 90), seed=70 + seed))
        assert prediction.capture is not None and prediction.capture.item_id, prediction.capture
        ids.append(prediction.capture.item_id)
    return ids


def test_claims_votes_disputes_and_reviewers(live_url: str) -> None:
    with Client(live_url, api_key=ADMIN_KEY) as winnow:
        fn = winnow.create_function("IsRed", ["red", "blue"])
        winnow.upload_samples(fn.id, colour_samples(), progress=False)
        winnow.train(fn.id)
        winnow.set_capture_policy(
            fn.id, random_rate=1.0, duplicate_similarity=0.999, reviews_per_item=2
        )
        agreed, disputed = _captured_items(winnow, fn.id, 2)
        keys = [
            winnow.create_key(["annotate"], function_id=fn.id, reviewer=name).key
            for name in ("ana", "bo")
        ]
        with Client(live_url, api_key=keys[0]) as ana, Client(live_url, api_key=keys[1]) as bo:
            page = ana.claim_review(fn.id, count=1)
            assert isinstance(page, ClaimedPage) and page.reviewer == "ana" and page.count == 1
            assert page.expires_at is not None and page.expires_at > datetime.now(UTC)
            [item] = page.data
            assert item.reviews_needed == 2 and item.reviews is None  # votes hidden from reviewers
            assert ana.release_review(fn.id, [item.id]) == 1
            assert ana.release_review(fn.id) == 0  # nothing left to give back
            assert {i.id for i in ana.claim_review(fn.id, kind="capture").data} == {
                agreed,
                disputed,
            }
            assert bo.claim_review(fn.id).count == 2  # each item's second review slot
            with pytest.raises(Unprocessable):
                bo.claim_review(fn.id, count=0)

            ana.annotate(fn.id, agreed, "red")
            assert bo.annotate(fn.id, agreed, "red").status == "annotated"
            assert ana.annotate(fn.id, disputed, "red").status == "pending"
            assert bo.annotate(fn.id, disputed, "blue").status == "disputed"
            with pytest.raises(Forbidden):
                ana.reviewers(fn.id)  # admin keys only

        [listed] = winnow.review_items(fn.id, status="disputed").data
        assert listed.id == disputed and listed.reviews == [
            ReviewVote("ana", "red"),
            ReviewVote("bo", "blue"),
        ]
        counts = winnow.review_counts(fn.id)
        assert (counts.pending, counts.annotated, counts.disputed) == (0, 1, 1)

        team = winnow.reviewers(fn.id)
        assert all(isinstance(r, Reviewer) for r in team)
        assert sorted((r.reviewer, r.votes, r.gold_votes, r.disputed) for r in team) == [
            ("ana", 2, 0, 1),
            ("bo", 2, 0, 1),
        ]
        assert all(r.agreement is not None and r.gold_accuracy is None for r in team)


def test_async_claim_release_and_reviewers_on_an_empty_queue(live_url: str) -> None:
    async def main() -> None:
        async with AsyncClient(live_url, api_key=ADMIN_KEY) as winnow:
            fn = await winnow.create_function("IsRed", ["red", "blue"])
            page = await winnow.claim_review(fn.id, count=5)
            assert page.count == 0 and page.data == [] and page.reviewer == "admin"
            assert await winnow.release_review(fn.id) == 0
            assert await winnow.reviewers(fn.id) == []

    asyncio.run(main())

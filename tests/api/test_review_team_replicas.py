"""Four reviewer processes work one queue through two replicas on PostgreSQL: every item ends in
one sample or one dispute, none twice, none lost, and no two reviewers were handed one review
slot. Reviewers claim pages, vote (sometimes disagreeing, so disputes happen), sometimes let a
claim go, and stop when a claim hands them nothing; rounds of them repeat until none is handed
anything (an item let go after the others stopped waits for the next round)."""

from __future__ import annotations

import multiprocessing
import random
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import httpx
import pytest
from sqlmodel import select

from service.settings import Settings
from store import ReviewClaim, ReviewItem, Sample, make_engine, session_scope
from tests.api.live import threaded_server
from tests.conftest import AUTH, add_colour_samples, data_uri, png_bytes

ITEMS = 40
MAX_ROUNDS = 5
LABELS = ("red", "green", "blue")


def _review(url: str, key: str, fid: str, seed: int) -> list[str]:
    """One reviewer's session: the item ids of every page they were handed."""
    rng = random.Random(seed)
    handed: list[str] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        while True:
            page = http.post(f"/v1/functions/{fid}/review/claim", json={"count": 3})
            page.raise_for_status()
            items = page.json()["data"]
            if not items:
                return handed
            handed += [item["id"] for item in items]
            for item in items:
                if rng.random() < 0.1:  # let it go for someone else
                    http.post(f"/v1/functions/{fid}/review/release", json={"itemIds": [item["id"]]})
                    continue
                label = LABELS[0] if rng.random() < 0.8 else rng.choice(LABELS)
                voted = http.post(
                    f"/v1/functions/{fid}/review/{item['id']}/annotate", json={"labelName": label}
                )
                assert voted.status_code == 200, voted.text


@pytest.fixture
def postgres_settings(settings: Settings) -> Settings:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("runs on PostgreSQL only")
    return settings


@pytest.mark.databases
def test_four_reviewer_processes_on_two_replicas_lose_and_double_nothing(
    postgres_settings: Settings,
) -> None:
    settings = postgres_settings
    with threaded_server(settings) as first, threaded_server(settings) as second:
        with httpx.Client(base_url=first, headers=AUTH, timeout=60) as admin:
            fid = admin.post("/v1/functions", json={"name": "colour"}).json()["id"]
            add_colour_samples(admin, fid, per_label=4)  # type: ignore[arg-type]
            assert admin.post(f"/v1/functions/{fid}/train").status_code == 200
            policy = {"randomRate": 1.0, "duplicateSimilarity": 0.999, "overlapRate": 0.5}
            assert admin.put(f"/v1/functions/{fid}/capture-policy", json=policy).is_success
            rng, captured = random.Random(0), 0
            for seed in range(10 * ITEMS):  # near-duplicates are not captured: draw until enough
                colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
                probe = {"data": data_uri(png_bytes(colour, seed=seed))}
                invoked = admin.post(f"/v1/functions/{fid}/invoke", json=probe).json()
                captured += invoked["capture"]["captured"]
                if captured == ITEMS:
                    break
            keys = []
            for name in ("ana", "ben", "cai", "dee"):
                body = {"scopes": ["annotate"], "functionId": fid, "reviewer": name}
                keys.append(admin.post("/v1/keys", json=body).json()["key"])
        context = multiprocessing.get_context("spawn")
        handed: list[list[str]] = [[] for _ in keys]
        with ProcessPoolExecutor(max_workers=4, mp_context=context) as pool:
            # A reviewer stops at an empty claim, which can come while another still holds items
            # it then lets go: rounds repeat until one hands nobody anything.
            for round_ in range(MAX_ROUNDS):
                sessions = [
                    pool.submit(_review, (first, second)[i % 2], key, fid, seed=i + 10 * round_)
                    for i, key in enumerate(keys)
                ]
                pages = [s.result(timeout=600) for s in sessions]
                for mine, page in zip(handed, pages, strict=True):
                    mine += page
                if not any(pages):
                    break
    assert all(handed), "a reviewer was handed nothing"
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            items = session.exec(select(ReviewItem).where(ReviewItem.function_id == fid)).all()
            samples = Counter(
                s.review_item_id
                for s in session.exec(select(Sample).where(Sample.function_id == fid)).all()
                if s.review_item_id
            )
            claims = session.exec(select(ReviewClaim).where(ReviewClaim.function_id == fid)).all()
    finally:
        engine.dispose()
    assert len(items) == ITEMS
    statuses = Counter(item.status for item in items)
    assert set(statuses) <= {"annotated", "disputed"}, statuses  # none lost in pending
    for item in items:
        expected = 1 if item.status == "annotated" else 0
        assert samples[item.id] == expected, (item.id, item.status, samples[item.id])
        votes = [c for c in claims if c.item_id == item.id and c.voted_at is not None]
        assert len(votes) == item.reviews_needed, (item.id, len(votes))
        assert len({c.reviewer for c in votes}) == len(votes)  # one slot per reviewer
    assert statuses["disputed"] > 0 and statuses["annotated"] > 0, statuses
    assert any(item.reviews_needed == 2 for item in items)

"""Review by a team: reviewer keys claim disjoint pages, overlap makes consensus or disputes,
admins settle disputes, gold items stay blind, and expired claims lose to the reviewer who took
the item over."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from store import LabelEvent, ReviewClaim, Sample, session_scope
from tests.api.test_review_races import captured_items

# Runs on SQLite and on a fresh PostgreSQL database (tests/databases.py).
pytestmark = pytest.mark.databases


def _reviewer(client: TestClient, fid: str, name: str) -> TestClient:
    body = {"scopes": ["annotate"], "functionId": fid, "name": f"{name}'s key", "reviewer": name}
    response = client.post("/v1/keys", json=body)
    assert response.status_code == 201, response.text
    return TestClient(client.app, headers={"Authorization": f"Bearer {response.json()['key']}"})


def _claim(reviewer: TestClient, fid: str, count: int) -> list[dict]:
    response = reviewer.post(f"/v1/functions/{fid}/review/claim", json={"count": count})
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _vote(reviewer: TestClient, fid: str, item_id: str, label: str) -> dict:
    response = reviewer.post(
        f"/v1/functions/{fid}/review/{item_id}/annotate", json={"labelName": label}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _events(client: TestClient) -> list[LabelEvent]:
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    with session_scope(engine) as session:
        return list(session.exec(select(LabelEvent).order_by(LabelEvent.id)).all())


def test_two_reviewers_claim_disjoint_pages_and_claiming_more_returns_what_exists(
    client: TestClient,
) -> None:
    fid, ids = captured_items(client, 5)
    alice, bob = _reviewer(client, fid, "alice"), _reviewer(client, fid, "bob")
    first = _claim(alice, fid, 3)
    second = _claim(bob, fid, 10)
    assert len(first) == 3 and len(second) == 2
    assert {i["id"] for i in first} | {i["id"] for i in second} == set(ids)
    assert not {i["id"] for i in first} & {i["id"] for i in second}
    # claiming again renews the same page rather than handing out more
    again = _claim(alice, fid, 3)
    assert [i["id"] for i in again] == [i["id"] for i in first]
    assert _claim(_reviewer(client, fid, "carol"), fid, 5) == []
    # a released item goes to the next reviewer who claims
    body = {"itemIds": [first[0]["id"]]}
    released = alice.post(f"/v1/functions/{fid}/review/release", json=body)
    assert released.status_code == 200 and released.json() == {"released": 1}
    assert [i["id"] for i in _claim(_reviewer(client, fid, "dan"), fid, 5)] == [first[0]["id"]]


def test_agreeing_reviews_make_one_sample_through_consensus(client: TestClient) -> None:
    fid, ids = captured_items(client, 2, reviewsPerItem=2)
    alice, bob = _reviewer(client, fid, "alice"), _reviewer(client, fid, "bob")
    assert {i["id"] for i in _claim(alice, fid, 5)} == set(ids)
    assert {i["id"] for i in _claim(bob, fid, 5)} == set(ids)  # a second slot each
    first = _vote(alice, fid, ids[0], "red")
    assert first["status"] == "pending" and first["reviewsNeeded"] == 2
    assert first["reviews"] is None  # reviewers do not see each other's votes
    done = _vote(bob, fid, ids[0], "red")
    assert done["status"] == "annotated" and done["labelName"] == "red"
    event = [e for e in _events(client) if e.review_item_id == ids[0]]
    assert len(event) == 1 and event[0].via == "consensus"
    assert event[0].actors == ["alice", "bob"] and event[0].label_after == "red"
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    with session_scope(engine) as session:
        made = session.exec(select(Sample).where(Sample.review_item_id == ids[0])).all()
    assert len(made) == 1


def test_disagreement_is_a_dispute_an_admin_settles(client: TestClient) -> None:
    fid, ids = captured_items(client, 1, reviewsPerItem=2)
    alice, bob = _reviewer(client, fid, "alice"), _reviewer(client, fid, "bob")
    _vote(alice, fid, ids[0], "red")
    disputed = _vote(bob, fid, ids[0], "green")
    assert disputed["status"] == "disputed"
    # reviewers neither vote again nor list disputes
    again = alice.post(f"/v1/functions/{fid}/review/{ids[0]}/annotate", json={"labelName": "red"})
    assert again.status_code == 409 and "disputed" in again.json()["message"]
    assert alice.get(f"/v1/functions/{fid}/review?status=disputed").status_code == 403
    listed = client.get(f"/v1/functions/{fid}/review?status=disputed").json()
    assert [i["id"] for i in listed["data"]] == ids
    assert listed["data"][0]["reviews"] == [
        {"reviewer": "alice", "labelName": "red"},
        {"reviewer": "bob", "labelName": "green"},
    ]
    assert client.get(f"/v1/functions/{fid}/review/counts").json()["disputed"] == 1
    settled = client.post(
        f"/v1/functions/{fid}/review/{ids[0]}/annotate",
        json={"labelName": "green", "annotatedBy": "lead"},
    )
    assert settled.status_code == 200 and settled.json()["status"] == "annotated"
    event = [e for e in _events(client) if e.review_item_id == ids[0]]
    assert [(e.via, e.actors, e.label_after) for e in event] == [("dispute", ["lead"], "green")]


def test_a_reviewer_cannot_name_someone_else_or_take_a_held_item(client: TestClient) -> None:
    fid, ids = captured_items(client, 1)
    alice, bob = _reviewer(client, fid, "alice"), _reviewer(client, fid, "bob")
    named = alice.post(
        f"/v1/functions/{fid}/review/{ids[0]}/annotate",
        json={"labelName": "red", "annotatedBy": "bob"},
    )
    assert named.status_code == 403 and "alice" in named.json()["message"]
    assert [i["id"] for i in _claim(alice, fid, 1)] == ids
    taken = bob.post(f"/v1/functions/{fid}/review/{ids[0]}/annotate", json={"labelName": "red"})
    assert taken.status_code == 409 and "alice" in taken.json()["message"]
    assert _events(client) == [] or all(e.review_item_id != ids[0] for e in _events(client))


def test_an_expired_claim_loses_to_whoever_annotated_since(client: TestClient) -> None:
    fid, ids = captured_items(client, 1)
    alice, bob = _reviewer(client, fid, "alice"), _reviewer(client, fid, "bob")
    assert [i["id"] for i in _claim(alice, fid, 1)] == ids
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    with session_scope(engine) as session:  # alice's lease runs out
        for row in session.exec(select(ReviewClaim)).all():
            row.expires_at = row.expires_at - timedelta(hours=1)
            session.add(row)
    assert [i["id"] for i in _claim(bob, fid, 1)] == ids  # bob takes the item over
    _vote(bob, fid, ids[0], "green")
    late = alice.post(f"/v1/functions/{fid}/review/{ids[0]}/annotate", json={"labelName": "red"})
    assert late.status_code == 409
    assert "'green'" in late.json()["message"] and "bob" in late.json()["message"]


def test_an_expired_claim_nobody_took_is_still_accepted(client: TestClient) -> None:
    fid, ids = captured_items(client, 1)
    alice = _reviewer(client, fid, "alice")
    _claim(alice, fid, 1)
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    with session_scope(engine) as session:
        for row in session.exec(select(ReviewClaim)).all():
            row.expires_at = row.expires_at - timedelta(hours=1)
            session.add(row)
    assert _vote(alice, fid, ids[0], "red")["status"] == "annotated"


def test_gold_items_are_blind_to_reviewers_and_never_change_samples(client: TestClient) -> None:
    fid, _ = captured_items(client, 2, goldRate=0.5)
    client.put(f"/v1/functions/{fid}/capture-policy", json={"goldRate": 0.5})
    alice = _reviewer(client, fid, "alice")
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    with session_scope(engine) as session:
        before = {s.id: s.label_id for s in session.exec(select(Sample)).all()}
    page = _claim(alice, fid, 20)  # half of the wanted items are gold, on average
    assert {i["kind"] for i in page} == {"capture"}
    assert all(i["givenLabel"] is None and i["reason"] != "gold" for i in page)
    assert all(i["predictedLabel"] is not None for i in page)  # the model predicts gold items too
    admin_view = client.get(f"/v1/functions/{fid}/review?kind=gold").json()["data"]
    assert admin_view, "a goldRate of 0.5 over 20 wanted items made no gold item"
    assert alice.get(f"/v1/functions/{fid}/review?kind=gold").status_code == 403
    captures = client.get(f"/v1/functions/{fid}/review?kind=capture").json()["data"]
    assert {g["score"] for g in admin_view} <= {c["score"] for c in captures}  # a capture's score
    gold = admin_view[0]
    wrong = "green" if gold["givenLabel"] != "green" else "red"
    assert _vote(alice, fid, gold["id"], wrong)["status"] == "annotated"
    # an admin cannot annotate a gold item into a sample either
    refused = client.post(
        f"/v1/functions/{fid}/review/{gold['id']}/annotate", json={"labelName": wrong}
    )
    assert refused.status_code == 409
    with session_scope(engine) as session:
        after = {s.id: s.label_id for s in session.exec(select(Sample)).all()}
    assert after == before
    # gold items stay out of the counts and the default listing
    counts = client.get(f"/v1/functions/{fid}/review/counts").json()
    assert counts["pending"] + counts["annotated"] == 2


def test_reviewers_lists_counts_and_quality_to_admin_keys(client: TestClient) -> None:
    fid, ids = captured_items(client, 4, reviewsPerItem=2)
    alice, bob = _reviewer(client, fid, "alice"), _reviewer(client, fid, "bob")
    for item_id in ids:
        _vote(alice, fid, item_id, "red")
    for item_id in ids[:3]:
        _vote(bob, fid, item_id, "red")
    _vote(bob, fid, ids[3], "green")  # one dispute
    assert alice.get(f"/v1/functions/{fid}/reviewers").status_code == 403
    listed = client.get(f"/v1/functions/{fid}/reviewers").json()
    by_name = {r["reviewer"]: r for r in listed["data"]}
    assert set(by_name) == {"alice", "bob"}
    assert by_name["alice"]["votes"] == by_name["bob"]["votes"] == 4
    assert by_name["alice"]["disputed"] == by_name["bob"]["disputed"] == 1
    # three agreed items and one dispute: raw agreement with the decided labels is 3 of 3
    assert by_name["alice"]["agreement"] == 1.0 and by_name["bob"]["agreement"] == 1.0
    assert by_name["alice"]["goldAccuracy"] is None
    assert 0.0 <= by_name["bob"]["estimatedAccuracy"] <= 1.0
    assert by_name["alice"]["itemsPerHour"] is None or by_name["alice"]["itemsPerHour"] > 0


def test_weighted_votes_settle_a_clear_majority_and_dispute_a_tie(client: TestClient) -> None:
    fid, ids = captured_items(client, 5, reviewsPerItem=3, weightVotes=True)
    team = [_reviewer(client, fid, name) for name in ("alice", "bob", "carol")]
    for item_id in ids[:3]:  # a record of agreement
        for reviewer in team:
            _vote(reviewer, fid, item_id, "red")
    for reviewer, label in zip(team, ("red", "red", "green"), strict=True):
        last = _vote(reviewer, fid, ids[3], label)
    assert last["status"] == "annotated" and last["labelName"] == "red"
    event = [e for e in _events(client) if e.review_item_id == ids[3]]
    assert [(e.via, e.actors) for e in event] == [("weighted", ["alice", "bob", "carol"])]
    for reviewer, label in zip(team, ("red", "green", "blue"), strict=True):
        last = _vote(reviewer, fid, ids[4], label)
    assert last["status"] == "disputed"  # three accurate reviewers, three labels: a person decides


def test_a_claim_is_no_larger_than_asked_and_gold_never_comes_alone(client: TestClient) -> None:
    fid, ids = captured_items(client, 3, goldRate=0.5)
    alice = _reviewer(client, fid, "alice")
    first = _claim(alice, fid, 20)
    assert len(first) >= 3  # the three captures and some gold
    assert len(_claim(alice, fid, 2)) == 2  # held items count toward the page
    for item in first:
        _vote(alice, fid, item["id"], "red")
    assert _claim(alice, fid, 20) == []  # the queue is done: no gold page on its own

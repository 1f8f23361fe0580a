"""A review item becomes at most one sample, ever, however many annotations race for it.

Concurrent annotate, bulk annotate, skip and discard of the same items, from one service and from
two replicas sharing the database: every answer is 200 or 409, each annotated item has exactly one
sample, and the item's label is its sample's.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from api.app import create_app
from service.settings import Settings
from store import Label, ReviewItem, Sample, session_scope
from tests.conftest import AUTH, add_colour_samples, data_uri, png_bytes

# Runs on SQLite and on a fresh PostgreSQL database (tests/databases.py).
pytestmark = pytest.mark.databases


@contextmanager
def _replicas(settings: Settings, count: int) -> Iterator[list[TestClient]]:
    """``count`` services on one database, as replicas behind a load balancer would be."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(TestClient(create_app(settings), headers=AUTH))
            for _ in range(count)
        ]


def captured_items(client: TestClient, count: int, **policy: object) -> tuple[str, list[str]]:
    """A trained colour function with ``count`` pending captures (and ``policy`` on top)."""
    fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
    add_colour_samples(client, fid, per_label=4)
    assert client.post(f"/v1/functions/{fid}/train").status_code == 200
    body = {"randomRate": 1.0, "duplicateSimilarity": 0.999, **policy}
    assert client.put(f"/v1/functions/{fid}/capture-policy", json=body).status_code == 200
    ids = []
    for seed in range(count):
        probe = {"data": data_uri(png_bytes((40 + 50 * seed, 200, 90), seed=70 + seed))}
        capture = client.post(f"/v1/functions/{fid}/invoke", json=probe).json()["capture"]
        assert capture["captured"], capture
        ids.append(capture["itemId"])
    return fid, ids


def _race(posts: list[tuple[TestClient, str, dict | None]]) -> list[httpx.Response]:
    """Send every ``(client, url, json body)`` POST at once."""
    with ThreadPoolExecutor(max_workers=len(posts)) as pool:
        return list(pool.map(lambda post: post[0].post(post[1], json=post[2]), posts))


def _samples_of(client: TestClient, item_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Each item's samples as (sample id, label name), read from the database."""
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    with session_scope(engine) as session:
        rows = session.exec(
            select(Sample.review_item_id, Sample.id, Label.name)
            .join(Label, Label.id == Sample.label_id)
            .where(Sample.review_item_id.in_(item_ids))  # type: ignore[union-attr]
        ).all()
    found: dict[str, list[tuple[str, str]]] = {item: [] for item in item_ids}
    for item_id, sample_id, label in rows:
        found[item_id].append((sample_id, label))
    return found


def _item_labels(client: TestClient, item_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    """Each item's status and label name."""
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    with session_scope(engine) as session:
        rows = session.exec(
            select(ReviewItem.id, ReviewItem.status, Label.name)
            .join(Label, Label.id == ReviewItem.label_id, isouter=True)
            .where(ReviewItem.id.in_(item_ids))  # type: ignore[attr-defined]
        ).all()
    return {item_id: (status, label) for item_id, status, label in rows}


def _check_one_sample_each(client: TestClient, item_ids: list[str]) -> None:
    samples = _samples_of(client, item_ids)
    items = _item_labels(client, item_ids)
    for item_id in item_ids:
        status, label = items[item_id]
        if status == "annotated":
            assert len(samples[item_id]) == 1, (item_id, samples[item_id])
            assert samples[item_id][0][1] == label, (item_id, samples[item_id], label)
        else:
            assert samples[item_id] == [], (item_id, status, samples[item_id])


@pytest.mark.parametrize("replicas", [1, 2])
def test_parallel_annotations_of_one_item_make_one_sample(
    settings: Settings, replicas: int
) -> None:
    with _replicas(settings, replicas) as clients:
        fid, (item_id,) = captured_items(clients[0], 1)
        url = f"/v1/functions/{fid}/review/{item_id}/annotate"
        labels = ["red", "blue"] * 25  # two reviewers disagree: the first one in wins
        senders = itertools.cycle(clients)
        answers = _race([(next(senders), url, {"labelName": label}) for label in labels])
        assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers]
        won = [a.json() for a in answers if a.status_code == 200]
        assert won, "at least the first annotation succeeds"
        winner = won[0]["labelName"]
        assert {(w["sampleId"], w["labelName"]) for w in won} == {(won[0]["sampleId"], winner)}
        refused = [a.json()["message"] for a in answers if a.status_code == 409]
        assert len(refused) == labels.count("red" if winner == "blue" else "blue")
        assert all(repr(winner) in message for message in refused), refused[:3]
        _check_one_sample_each(clients[0], [item_id])


@pytest.mark.parametrize("replicas", [1, 2])
def test_parallel_bulk_annotations_make_one_sample_per_item(
    settings: Settings, replicas: int
) -> None:
    with _replicas(settings, replicas) as clients:
        fid, ids = captured_items(clients[0], 3)
        url = f"/v1/functions/{fid}/review/annotate"
        body = {"items": [{"itemId": i, "labelName": "red"} for i in reversed(ids)]}
        senders = itertools.cycle(clients)
        answers = _race([(next(senders), url, body) for _ in range(20)])
        assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
        sample_ids = {tuple(i["sampleId"] for i in a.json()["data"]) for a in answers}
        assert len(sample_ids) == 1, sample_ids  # every repeat names the same samples
        _check_one_sample_each(clients[0], ids)
        assert {status for status, _ in _item_labels(clients[0], ids).values()} == {"annotated"}


@pytest.mark.parametrize("replicas", [1, 2])
def test_annotate_racing_skip_and_discard_ends_in_one_state(
    settings: Settings, replicas: int
) -> None:
    with _replicas(settings, replicas) as clients:
        fid, ids = captured_items(clients[0], 2)
        senders = itertools.cycle(clients)
        posts = [
            (next(senders), f"/v1/functions/{fid}/review/{item_id}/{action}", body)
            for item_id in ids
            for action, body in [
                ("annotate", {"labelName": "red"}),
                ("skip", None),
                ("discard", None),
            ]
            * 6
        ]
        answers = _race(posts)
        assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers]
        _check_one_sample_each(clients[0], ids)
        for item_id, (status, _) in _item_labels(clients[0], ids).items():
            item = clients[0].get(f"/v1/functions/{fid}/review", params={"status": status}).json()
            assert item_id in [i["id"] for i in item["data"]]


def test_a_repeat_is_idempotent_and_another_label_is_a_conflict(client: TestClient) -> None:
    fid, (item_id,) = captured_items(client, 1)
    url = f"/v1/functions/{fid}/review/{item_id}/annotate"
    first = client.post(url, json={"labelName": "red"})
    assert first.status_code == 200, first.text
    repeat = client.post(url, json={"labelName": " red "})
    assert repeat.status_code == 200 and repeat.json()["sampleId"] == first.json()["sampleId"]
    other = client.post(url, json={"labelName": "blue"})
    assert other.status_code == 409 and "'red'" in other.json()["message"]
    for action in ("skip", "discard"):
        moved = client.post(f"/v1/functions/{fid}/review/{item_id}/{action}")
        assert moved.status_code == 409 and "annotated" in moved.json()["message"]
    # Relabelling stays an explicit update of the sample's annotation.
    sample_id = first.json()["sampleId"]
    relabel = client.put(
        f"/v1/functions/{fid}/samples/{sample_id}/annotation", json={"labelName": "blue"}
    )
    assert relabel.status_code == 200, relabel.text
    # ... and the item follows its sample: a repeat now is one with the label in force.
    _check_one_sample_each(client, [item_id])
    again = client.post(url, json={"labelName": "blue"})
    assert again.status_code == 200 and again.json()["sampleId"] == sample_id

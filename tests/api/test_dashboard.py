"""The dashboard's data and charts, and the nearest labelled samples of a review item."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routers import models as models_router
from service.dashboard import activity
from service.functions import get_function
from service.novelty import drift_public
from service.settings import Settings
from store import ReviewItem, session_scope
from tests.conftest import AUTH, add_colour_samples, data_uri, png_bytes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CAPTURE_ALL = {"randomRate": 1.0, "duplicateSimilarity": 1.0}  # every input but exact copies


def _trained_with_captures(client: TestClient, captures: int = 3) -> tuple[str, list[str]]:
    fid = client.post(
        "/v1/functions", json={"name": "f", "labels": ["red", "blue", "green"]}
    ).json()["id"]
    add_colour_samples(client, fid, per_label=3)
    assert client.post(f"/v1/functions/{fid}/train").status_code == 200
    client.put(f"/v1/functions/{fid}/capture-policy", json=CAPTURE_ALL)
    items = []
    for seed in range(captures):
        body = {"data": data_uri(png_bytes((200, 120, 30), seed=50 + seed))}
        items.append(
            client.post(f"/v1/functions/{fid}/invoke", json=body).json()["capture"]["itemId"]
        )
    assert all(items)
    return fid, items


def test_dashboard_counts_labels_and_this_hours_queue(client: TestClient) -> None:
    fid, items = _trained_with_captures(client)
    client.post(f"/v1/functions/{fid}/review/{items[0]}/annotate", json={"labelName": "red"})
    client.post(f"/v1/functions/{fid}/review/{items[1]}/skip")

    body = client.get(f"/v1/functions/{fid}/dashboard", params={"hours": 3}).json()
    # the annotated capture became a fourth red sample; green has none and still shows
    assert body["labelCounts"] == [
        {"labelName": "red", "count": 4},
        {"labelName": "blue", "count": 3},
        {"labelName": "green", "count": 0},
    ]
    assert body["unlabelledSamples"] == 0
    assert len(body["activity"]) == 3
    earlier, now = body["activity"][:2], body["activity"][2]
    assert all(h["captured"] == h["resolved"] == h["queueDepth"] == 0 for h in earlier)
    assert (now["captured"], now["resolved"], now["queueDepth"]) == (3, 2, 1)
    # every invoke was captured (random rate 1) and counted, its novelty scored or not (the
    # serving worker fits the novelty model after the deploy, so some may be scored)
    assert (now["invokes"], now["captureRate"]) == (3, 1.0) and 0 <= now["scored"] <= 3
    hours = [datetime.fromisoformat(h["hour"].replace("Z", "+00:00")) for h in body["activity"]]
    assert hours[2] - hours[0] == timedelta(hours=2) and hours[2].minute == 0


def test_queue_depth_follows_when_items_came_and_went(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
    now = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    at = lambda hours: now - timedelta(hours=hours)  # noqa: E731
    spans = [  # (created, left the queue or None while pending, status)
        (at(5), at(4.5), "annotated"),  # came and went before the window
        (at(2.2), at(0.2), "annotated"),  # pending through hours -2 and -1, left this hour
        (at(1.2), None, "pending"),
        (at(0.1), at(0.05), "discarded"),
    ]
    with session_scope(client.app.state.runtime.engine) as session:
        for created, left, status in spans:
            session.add(
                ReviewItem(
                    function_id=fid,
                    blob="b",
                    embedding=b"",
                    status=status,
                    reason="random",
                    score=0.0,
                    created_at=created,
                    updated_at=left or created,
                )
            )
    hour = lambda h: int(datetime(2026, 5, 1, h, tzinfo=UTC).timestamp())  # noqa: E731
    traffic = {hour(11): (20, 10, 3), hour(12): (0, 0, 0)}  # hour 10 not counted
    with session_scope(client.app.state.runtime.engine) as session:
        hours = activity(session, fid, hours=3, now=now, traffic=traffic)
    assert [h.hour for h in hours] == [datetime(2026, 5, 1, h, tzinfo=UTC) for h in (10, 11, 12)]
    assert [h.captured for h in hours] == [1, 1, 1]
    assert [h.resolved for h in hours] == [0, 0, 2]
    assert [h.queue_depth for h in hours] == [1, 2, 1]  # at 11:00, 12:00 and now (12:30)
    assert [(h.invokes, h.scored, h.novel) for h in hours] == [(0, 0, 0), (20, 10, 3), (0, 0, 0)]
    assert [h.capture_rate for h in hours] == [None, 1 / 20, None]


def test_capture_rate_counts_invokes_before_any_novelty_model(client: TestClient) -> None:
    # no model and no novelty model: cold-start capture judges every input, none is scored
    fid = client.post("/v1/functions", json={"name": "f", "labels": ["red", "blue"]}).json()["id"]
    client.put(f"/v1/functions/{fid}/capture-policy", json=CAPTURE_ALL)
    answers = [
        client.post(
            f"/v1/functions/{fid}/invoke",
            json={"data": data_uri(png_bytes((200, 120, 30), seed=50 + seed))},
        ).json()["capture"]
        for seed in range(4)
    ]
    assert all(a["novelty"] is None for a in answers)
    captured = sum(a["captured"] for a in answers)
    assert captured >= 1

    body = client.get(f"/v1/functions/{fid}/dashboard", params={"hours": 1}).json()
    (now,) = body["activity"]
    assert (now["captured"], now["invokes"], now["scored"], now["novel"]) == (captured, 4, 0, 0)
    assert now["captureRate"] == captured / 4
    rt = client.app.state.runtime
    with session_scope(rt.engine) as session:
        drift = drift_public(rt, get_function(session, fid))
    assert drift.hours == [] and drift.novel_share_last_hour is None  # no share without a score
    metrics = client.get("/metrics").text
    assert f'winnow_invokes_total{{function_id="{fid}"}} 4.0' in metrics
    assert f'winnow_scored_invokes_total{{function_id="{fid}"}} 0.0' in metrics


def test_charts_are_pngs(client: TestClient) -> None:
    fid, _ = _trained_with_captures(client, captures=1)
    assert client.post(f"/v1/functions/{fid}/train").status_code == 200  # a second version
    for chart in ("model-history", "activity", "labels"):
        response = client.get(f"/v1/functions/{fid}/charts/{chart}.png")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(PNG_MAGIC) and len(response.content) > 5000
    empty = client.post("/v1/functions", json={"name": "empty"}).json()["id"]
    for chart in ("model-history", "activity", "labels"):
        assert client.get(f"/v1/functions/{empty}/charts/{chart}.png").content.startswith(PNG_MAGIC)


def test_bad_dashboard_requests_are_4xx(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
    missing = "function_00000000000000000000"
    assert client.get(f"/v1/functions/{missing}/dashboard").status_code == 404
    assert client.get(f"/v1/functions/{missing}/charts/labels.png").status_code == 404
    assert client.get(f"/v1/functions/{fid}/charts/pie.png").status_code == 422
    assert client.get(f"/v1/functions/{fid}/dashboard", params={"hours": 0}).status_code == 422
    assert client.get(f"/v1/functions/{fid}/dashboard", params={"hours": 10**6}).status_code == 422


def test_similar_to_a_review_item(client: TestClient) -> None:
    fid, items = _trained_with_captures(client, captures=2)
    hits = client.get(f"/v1/functions/{fid}/review/{items[0]}/similar", params={"count": 4}).json()
    assert hits["count"] == 4
    similarities = [h["similarity"] for h in hits["data"]]
    assert similarities == sorted(similarities, reverse=True)
    # once annotated, the item's own sample is not among its neighbours
    sample = client.post(
        f"/v1/functions/{fid}/review/{items[0]}/annotate", json={"labelName": "green"}
    ).json()["sampleId"]
    after = client.get(
        f"/v1/functions/{fid}/review/{items[0]}/similar", params={"count": 100}
    ).json()
    assert after["count"] == 6 and sample not in {h["sampleId"] for h in after["data"]}
    missing = client.get(f"/v1/functions/{fid}/review/item_00000000000000000000/similar")
    assert missing.status_code == 404


def test_last_training_run_outlives_a_restart(settings: Settings) -> None:
    with TestClient(create_app(settings), headers=AUTH) as client:
        fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
        training = client.get(f"/v1/functions/{fid}/training").json()
        assert training["finishedAt"] is None  # never trained, not even zero-shot version 0
        add_colour_samples(client, fid, per_label=3)
        assert client.get(f"/v1/functions/{fid}/training").json()["finishedAt"] is None
        assert client.post(f"/v1/functions/{fid}/train").status_code == 200
    with TestClient(create_app(settings), headers=AUTH) as client:  # nothing ran in this one
        training = client.get(f"/v1/functions/{fid}/training").json()
        [version] = [
            m for m in client.get(f"/v1/functions/{fid}/models").json()["data"] if m["version"] == 1
        ]
        assert training["deployedVersion"] == 1 and training["finishedAt"] == version["createdAt"]


def test_confusion_matrix_is_titled_with_the_functions_name(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    titles: list[str] = []

    def drawn(metrics: dict, *, title: str) -> bytes:
        titles.append(title)
        return PNG_MAGIC

    monkeypatch.setattr(models_router, "confusion_matrix_png", drawn)
    fid = client.post("/v1/functions", json={"name": "colours of things"}).json()["id"]
    add_colour_samples(client, fid, per_label=3)
    assert client.post(f"/v1/functions/{fid}/train").json()["version"] == 1
    assert client.get(f"/v1/functions/{fid}/metrics/confusion-matrix.png").status_code == 200
    assert titles == ["colours of things v1"]

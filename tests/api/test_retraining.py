"""Scheduled retraining, champion/challenger decisions, rollback and pinning."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from datetime import datetime

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from service.settings import Settings
from tests.api.live import threaded_server, wait_until
from tests.conftest import BLUE, RED, add_colour_samples, data_uri, png_bytes

AUTH = {"Authorization": "Bearer test-admin-key"}


def _sample(client, fid: str, colour, label: str, seed: int) -> None:  # type: ignore[no-untyped-def]
    body = {"data": data_uri(png_bytes(colour, seed=seed)), "annotation": {"labelName": label}}
    response = client.post(f"/v1/functions/{fid}/samples", json=body)
    assert response.status_code == 201, response.text


def test_scheduler_retrains_when_annotations_arrive(settings: Settings) -> None:
    settings = dataclasses.replace(settings, retrain_interval=0.2, retrain_min_annotations=3)
    with TestClient(create_app(settings), headers=AUTH) as client:
        fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
        add_colour_samples(client, fid, per_label=3)  # 6 annotations: the first model trains itself

        def settled() -> dict | None:
            status = client.get(f"/v1/functions/{fid}/training").json()
            done = status["deployedVersion"] and status["newAnnotations"] < 3
            return status if done and status["state"] == "idle" else None

        status = wait_until(settled, what="scheduled training to settle")
        version = status["deployedVersion"]
        assert status["lastDecision"]["trigger"] == "schedule"
        # Top up to exactly 2 new annotations: below the minimum of 3, nothing retrains.
        for seed in range(40, 42 - status["newAnnotations"]):
            _sample(client, fid, RED, "red", seed)
        time.sleep(0.6)  # three ticks
        # versions 1..version, and the zero-shot version 0 (tiny-clip has a text tower)
        assert client.get(f"/v1/functions/{fid}/models").json()["count"] == version + 1
        _sample(client, fid, BLUE, "blue", 42)
        wait_until(
            lambda: (
                client.get(f"/v1/functions/{fid}/training").json()["deployedVersion"] == version + 1
            ),
            what="retrain after 3 annotations",
        )
        result = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes(RED))})
        assert result.json()["modelVersion"] == version + 1


def test_an_upload_burst_trains_once_after_its_last_sample(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Each labelled Nyckel sample asks for a training; the burst settles first, then trains once."""
    settings = dataclasses.replace(
        settings, retrain_interval=60, retrain_min_annotations=1000, retrain_debounce=5
    )
    caplog.set_level(logging.INFO)
    with TestClient(create_app(settings), headers=AUTH) as client:
        made = client.post(
            "/nyckel/v1/functions",
            json={"name": "colour", "input": "Image", "output": "Classification"},
        )
        fid = made.json()["id"]
        for seed in range(5):
            for label, colour in (("red", RED), ("blue", BLUE)):
                body = {
                    "data": data_uri(png_bytes(colour, seed=seed)),
                    "annotation": {"labelName": label},
                }
                response = client.post(f"/nyckel/v1/functions/{fid}/samples", json=body)
                assert response.status_code == 200, response.text

        def trained() -> list[dict] | None:
            if client.get(f"/v1/functions/{fid}/training").json()["state"] != "idle":
                return None
            models = client.get(f"/v1/functions/{fid}/models").json()["data"]
            return [m for m in models if m["kind"] == "trained"] or None

        versions = wait_until(trained, timeout=90, what="the burst's training")
        assert client.get(f"/nyckel/v0.9/functions/{fid}/metrics").json()["isTraining"] is False
    assert [(m["version"], m["sampleCount"]) for m in versions] == [(1, 10)]
    skips = [r.getMessage() for r in caplog.records if "running instances" in r.getMessage()]
    assert skips == []  # no overlapping checks to skip (APScheduler logged each as a warning)


def test_train_without_waiting_is_queued(settings: Settings) -> None:
    settings = dataclasses.replace(settings, retrain_interval=30, retrain_min_annotations=1000)
    with TestClient(create_app(settings), headers=AUTH) as client:
        fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
        add_colour_samples(client, fid, per_label=3)
        queued = client.post(f"/v1/functions/{fid}/train", params={"wait": "false"})
        assert queued.status_code == 202 and queued.json()["deployedVersion"] is None
        wait_until(
            lambda: client.get(f"/v1/functions/{fid}/training").json()["deployedVersion"] == 1,
            what="queued training",
        )
        assert client.get(f"/v1/functions/{fid}/models").json()["data"][0]["trigger"] == "manual"


def test_worse_candidate_is_rejected_with_its_reason(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
    add_colour_samples(client, fid, per_label=8)
    assert client.post(f"/v1/functions/{fid}/train").json()["version"] == 1

    # An unbiased holdout: the random capture slice, labelled correctly through review.
    client.put(
        f"/v1/functions/{fid}/capture-policy", json={"randomRate": 1.0, "duplicateSimilarity": 1.0}
    )
    for i in range(12):
        colour, label = (RED, "red") if i % 2 else (BLUE, "blue")
        captured = client.post(
            f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes(colour, seed=200 + i))}
        ).json()["capture"]
        assert captured["reason"] == "random", captured
        annotated = client.post(
            f"/v1/functions/{fid}/review/{captured['itemId']}/annotate", json={"labelName": label}
        )
        assert annotated.status_code == 200
    # Then a flood of deliberately wrong labels: red images called blue and vice versa.
    for i in range(20):
        _sample(client, fid, RED, "blue", 300 + i)
        _sample(client, fid, BLUE, "red", 400 + i)

    candidate = client.post(f"/v1/functions/{fid}/train").json()
    assert candidate["version"] == 2 and candidate["status"] == "rejected", candidate
    decision = candidate["decision"]
    assert decision["deploy"] is False and decision["basis"] == "holdout"
    assert "worse than champion on holdout" in decision["reason"]
    holdout = decision["comparisons"][0]
    assert holdout["n"] == 12 and holdout["championAccuracy"] > holdout["challengerAccuracy"] + 0.2
    assert decision["flips"] >= 0
    # The champion keeps serving.
    status = client.get(f"/v1/functions/{fid}/training").json()
    assert status["deployedVersion"] == 1 and status["lastDecision"]["status"] == "rejected"
    probe = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes(RED))})
    assert probe.json()["modelVersion"] == 1 and probe.json()["labelName"] == "red"


def test_rollback_pin_and_roll_forward(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
    add_colour_samples(client, fid, per_label=4)
    assert client.post(f"/v1/functions/{fid}/train").json()["status"] == "deployed"
    assert client.post(f"/v1/functions/{fid}/train").json()["status"] == "deployed"
    back = client.post(f"/v1/functions/{fid}/models/1/deploy")
    assert back.status_code == 200 and back.json()["status"] == "deployed"
    fn = client.get(f"/v1/functions/{fid}").json()
    assert fn["deployedVersion"] == 1 and fn["pinned"] is True
    probe = {"data": data_uri(png_bytes(BLUE))}
    assert client.post(f"/v1/functions/{fid}/invoke", json=probe).json()["modelVersion"] == 1

    held = client.post(f"/v1/functions/{fid}/train").json()
    assert (
        held["version"] == 3
        and held["status"] == "rejected"
        and "pinned" in held["decision"]["reason"]
    )
    assert client.post(f"/v1/functions/{fid}/invoke", json=probe).json()["modelVersion"] == 1

    assert client.delete(f"/v1/functions/{fid}/pin").json()["pinned"] is False
    forward = client.post(f"/v1/functions/{fid}/models/3/deploy", params={"pin": "false"})
    assert forward.status_code == 200
    assert client.post(f"/v1/functions/{fid}/invoke", json=probe).json()["modelVersion"] == 3
    statuses = {
        m["version"]: m["status"] for m in client.get(f"/v1/functions/{fid}/models").json()["data"]
    }
    assert statuses == {0: "retired", 1: "retired", 2: "retired", 3: "deployed"}  # 0: zero-shot
    assert client.post(f"/v1/functions/{fid}/models/9/deploy").status_code == 404
    assert client.post(f"/v1/functions/{fid}/models/99999999999999999999/deploy").status_code == 422


def test_concurrent_invokes_across_ten_automatic_redeploys(settings: Settings) -> None:
    settings = dataclasses.replace(
        settings, retrain_interval=0.05, retrain_min_annotations=1, retrain_debounce=0
    )
    with threaded_server(settings) as url:
        admin = httpx.Client(base_url=url, headers=AUTH, timeout=60)
        fid = admin.post("/v1/functions", json={"name": "colour"}).json()["id"]
        add_colour_samples(admin, fid, per_label=3)  # type: ignore[arg-type]
        wait_until(lambda: admin.get(f"/v1/functions/{fid}").json()["deployedVersion"], what="v1")

        stop = threading.Event()
        results: list[list[tuple[float, float, int | None, int]]] = [[] for _ in range(3)]

        def invoker(out: list[tuple[float, float, int | None, int]], seed: int) -> None:
            with httpx.Client(base_url=url, headers=AUTH, timeout=60) as http:
                body = {"data": data_uri(png_bytes(RED, seed=seed))}
                while not stop.is_set():
                    start = time.time()
                    response = http.post(
                        f"/v1/functions/{fid}/invoke", json=body, params={"capture": "false"}
                    )
                    version = (
                        response.json().get("modelVersion") if response.status_code == 200 else None
                    )
                    out.append((start, time.time(), version, response.status_code))

        threads = [
            threading.Thread(target=invoker, args=(out, 500 + i)) for i, out in enumerate(results)
        ]
        for thread in threads:
            thread.start()
        try:
            seed = 600
            deadline = time.monotonic() + 240
            while admin.get(f"/v1/functions/{fid}").json()["deployedVersion"] < 12:
                assert time.monotonic() < deadline, "fewer than 11 redeploys in time"
                seed += 1
                _sample(admin, fid, RED if seed % 2 else BLUE, "red" if seed % 2 else "blue", seed)
                time.sleep(0.05)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)

        models = admin.get(f"/v1/functions/{fid}/models").json()["data"]
        windows = _deploy_windows(models)
        calls = [call for out in results for call in out]
        assert len(calls) > 50
        assert [c for c in calls if c[3] != 200] == [], "every invoke must succeed"
        for start, end, version, _ in calls:
            assert version in windows, f"version {version} was never deployed"
            live_from, live_until = windows[version]
            assert live_from <= end + 0.5 and start - 0.5 <= live_until, (version, start, end)
        for out in results:  # each client sees versions only move forward
            versions = [v for _, _, v, _ in out]
            assert versions == sorted(versions)
        print(f"{len(calls)} invokes across {len(windows)} deployed versions, 0 failed")


def _deploy_windows(models: list[dict]) -> dict[int, tuple[float, float]]:
    """version -> (deployed at, replaced at) in epoch seconds, from the version history."""
    deployed = sorted(
        (datetime.fromisoformat(m["deployedAt"]).timestamp(), m["version"])
        for m in models
        if m["deployedAt"]
    )
    windows = {}
    for i, (at, version) in enumerate(deployed):
        until = deployed[i + 1][0] if i + 1 < len(deployed) else float("inf")
        windows[version] = (at, until)
    return windows

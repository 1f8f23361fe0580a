"""Two services on one database (replicas) share each function's capture policy and budget."""

import dataclasses
import logging
import os
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from service.settings import Settings
from store import BlobStore
from tests.api.live import wait_until
from tests.conftest import AUTH, BLUE, add_colour_samples, data_uri, png_bytes

# Runs on SQLite and on a fresh PostgreSQL database (tests/databases.py).
pytestmark = pytest.mark.databases


def _capture(client: TestClient, fid: str, seed: int) -> dict:
    probe = {"data": data_uri(png_bytes(BLUE, seed=seed))}
    return client.post(f"/v1/functions/{fid}/invoke", json=probe).json()["capture"]


def test_replicas_share_the_capture_policy_and_the_hourly_budget(settings: Settings) -> None:
    with TestClient(create_app(settings), headers=AUTH) as one:
        fid = one.post("/v1/functions", json={"name": "colour"}).json()["id"]
        add_colour_samples(one, fid, per_label=4)
        assert one.post(f"/v1/functions/{fid}/train").status_code == 200
        # started after the deploy, the second replica serves it (later ones: its scheduler polls)
        with TestClient(create_app(settings), headers=AUTH) as two:
            _capture(two, fid, 99)  # its capture state starts on the default policy
            before = two.get(f"/v1/functions/{fid}/review/counts").json()["pending"]
            policy = {"maxPerHour": before + 3, "randomRate": 1.0, "duplicateSimilarity": 1.0}
            assert one.put(f"/v1/functions/{fid}/capture-policy", json=policy).status_code == 200

            answers = [
                (c, _capture(c, fid, seed))
                for c, seed in zip([one, two] * 5, range(100, 110), strict=True)
            ]

            # the second replica runs the new policy: what it captures is the random slice
            assert [a["reason"] for c, a in answers if c is two and a["captured"]] == ["random"]
            # and the hour's budget holds for both together, not for each
            assert sum(a["captured"] for _, a in answers) == 3
            assert one.get(f"/v1/functions/{fid}/review/counts").json()["pending"] == before + 3
            status = two.get(f"/v1/functions/{fid}/capture-policy").json()["status"]
            assert status["capturesLastHour"] == before + 3
            assert status["maxPerHour"] == before + 3


def test_an_image_one_replica_queued_is_not_captured_again_by_another(settings: Settings) -> None:
    with TestClient(create_app(settings), headers=AUTH) as one:
        fid = one.post("/v1/functions", json={"name": "colour"}).json()["id"]
        add_colour_samples(one, fid, per_label=4)
        assert one.post(f"/v1/functions/{fid}/train").status_code == 200
        policy = {"randomRate": 1.0, "duplicateSimilarity": 1.0}  # exact copies only
        assert one.put(f"/v1/functions/{fid}/capture-policy", json=policy).status_code == 200
        with TestClient(create_app(settings), headers=AUTH) as two:
            assert _capture(one, fid, 500)["captured"]  # queued after the second replica started
            assert not _capture(two, fid, 500)["captured"]  # which still knows it is queued
            assert not _capture(two, fid, 0)["captured"]  # png_bytes(BLUE, seed=0) is a sample
            assert _capture(two, fid, 501)["captured"]
            counts = one.get(f"/v1/functions/{fid}/review/counts").json()
            assert counts["pending"] == 2


def test_a_replica_serves_what_another_deployed_within_its_poll(settings: Settings) -> None:
    assert settings.retrain_interval == 0  # no scheduler: the serving worker's poll notices
    probe = {"data": data_uri(png_bytes(BLUE, seed=7))}

    def answered(client: TestClient, fid: str) -> int | None:
        answer = client.post(f"/v1/functions/{fid}/invoke", json=probe)
        return answer.json()["modelVersion"] if answer.status_code == 200 else None

    def version(client: TestClient, fid: str) -> int | None:
        """The version the replica settles on (within the poll): it never answers another one
        than the deployed before or after."""
        seen: list[int | None] = []

        def settled() -> bool:
            seen.append(answered(client, fid))
            return len(seen) >= 2 and seen[-1] == seen[-2] == deployed()

        wait_until(settled, timeout=10)
        return seen[-1]

    def deployed() -> int | None:
        return one.get(f"/v1/functions/{fid}").json()["deployedVersion"]

    with (
        TestClient(create_app(settings), headers=AUTH) as one,
        TestClient(create_app(settings), headers=AUTH) as two,
    ):
        fid = one.post("/v1/functions", json={"name": "colour"}).json()["id"]
        add_colour_samples(one, fid, per_label=4)
        # no trained model anywhere yet: the zero-shot head of the labels the samples made
        assert version(two, fid) == 0
        assert one.post(f"/v1/functions/{fid}/train").json()["status"] == "deployed"
        assert version(two, fid) == 1
        assert one.post(f"/v1/functions/{fid}/train").json()["status"] == "deployed"
        assert version(two, fid) == 2
        policy = {"randomRate": 1.0, "duplicateSimilarity": 0.999}
        assert one.put(f"/v1/functions/{fid}/capture-policy", json=policy).status_code == 200
        assert one.post(f"/v1/functions/{fid}/models/1/deploy").status_code == 200  # rollback
        assert version(two, fid) == 1  # read with the policy, in the same poll

        # following a deploy, the second replica also learnt the samples added through the first:
        # one of them sent again is a duplicate, not a capture (everything else would be)
        assert _capture(two, fid, 0)["captured"] is False  # png_bytes(BLUE, seed=0): a sample
        green = {"data": data_uri(png_bytes((0, 200, 0), seed=0))}
        assert two.post(f"/v1/functions/{fid}/invoke", json=green).json()["capture"]["captured"]


def test_a_replica_without_the_artifact_keeps_answering_and_says_why(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The second replica shares the database but not the data dir's models/."""
    elsewhere = dataclasses.replace(
        settings, data_dir=tmp_path / "elsewhere", database_url=settings.database
    )
    probe = {"data": data_uri(png_bytes(BLUE, seed=7))}
    with (
        TestClient(create_app(settings), headers=AUTH) as one,
        TestClient(create_app(elsewhere), headers=AUTH) as two,
    ):
        fid = one.post("/v1/functions", json={"name": "colour"}).json()["id"]
        add_colour_samples(one, fid, per_label=4)
        assert one.post(f"/v1/functions/{fid}/train").json()["status"] == "deployed"
        with caplog.at_level(logging.ERROR, logger="winnow"):
            answers = [two.post(f"/v1/functions/{fid}/invoke", json=probe) for _ in range(2)]
            assert [a.status_code for a in answers] == [503, 503]  # not a 500, nor "no model yet"
            message = answers[0].json()["message"]
            assert "version 1 deployed, but this server cannot load it" in message
            # each answer asks the worker to try again (the models dir may be shared by then)
            wait_until(lambda: caplog.text.count("deployed version 1 cannot be loaded") >= 2)
        assert one.post(f"/v1/functions/{fid}/invoke", json=probe).json()["modelVersion"] == 1


def test_replicas_training_one_function_at_once_take_turns(settings: Settings) -> None:
    """Both replicas' trainings run (each was asked to wait for a slot); neither clobbers the
    other's version number or artifact."""
    if not settings.database_url:
        pytest.skip("several processes on one SQLite database are not supported: use PostgreSQL")
    with (
        TestClient(create_app(settings), headers=AUTH) as one,
        TestClient(create_app(settings), headers=AUTH) as two,
    ):
        fid = one.post("/v1/functions", json={"name": "colour"}).json()["id"]
        add_colour_samples(one, fid, per_label=6)
        start = threading.Barrier(4)
        answers: list[tuple[int, dict]] = []

        def train(client: TestClient) -> None:
            start.wait(timeout=10)
            response = client.post(f"/v1/functions/{fid}/train")
            answers.append((response.status_code, response.json()))

        threads = [threading.Thread(target=train, args=(c,)) for c in (one, two, one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert sorted(code for code, _ in answers) == [200] * 4, answers
        assert sorted(body["version"] for _, body in answers) == [1, 2, 3, 4]
        listed = one.get(f"/v1/functions/{fid}/models").json()["data"]
        # version 0 is the zero-shot head the labels gave the function (the tiny CLIP has text)
        assert sorted(m["version"] for m in listed) == [0, 1, 2, 3, 4]
        for version in (1, 2, 3, 4):  # every artifact is the one its row describes
            deployed = two.post(f"/v1/functions/{fid}/models/{version}/deploy")
            assert deployed.status_code == 200, deployed.text


def test_the_startup_sweep_spares_young_files_where_replicas_may_share_the_data_dir(
    settings: Settings,
) -> None:
    """On PostgreSQL another replica may be between writing a blob and committing its row."""
    blobs = BlobStore(Path(settings.data_dir) / "blobs")
    young, old = blobs.put(b"in flight elsewhere"), blobs.put(b"left by a crash")
    two_hours_ago = time.time() - 7200
    os.utime(Path(settings.data_dir) / "blobs" / old[:2] / old[2:], (two_hours_ago,) * 2)
    with TestClient(create_app(settings), headers=AUTH):
        pass
    assert not blobs.exists(old)
    assert blobs.exists(young) == bool(settings.database_url)  # SQLite: the only writer

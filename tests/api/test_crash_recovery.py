"""kill -9 during training and during artifact writing: the previous version keeps serving."""

from __future__ import annotations

import os

import pytest

from tests.api.live import ServiceProcess, wait_until
from tests.conftest import BLUE, RED, data_uri, png_bytes

pytestmark = pytest.mark.slow

ADMIN_KEY = "test-admin-key"
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
ARGS = (
    "--backbone",
    "tiny-clip",
    "--retrain-interval",
    "0.5",
    "--retrain-min-annotations",
    "100000",
)


@pytest.fixture(autouse=True)
def _admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WINNOW_ADMIN_KEY", ADMIN_KEY)


def _add(http, fid: str, n: int, start: int) -> list[str]:  # type: ignore[no-untyped-def]
    ids = []
    for i in range(start, start + n):
        colour, label = (RED, "red") if i % 2 else (BLUE, "blue")
        body = {"data": data_uri(png_bytes(colour, seed=i)), "annotation": {"labelName": label}}
        response = http.post(f"/v1/functions/{fid}/samples", json=body)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def test_kill_during_training_and_artifact_writing_keeps_previous_version(tmp_path) -> None:
    data_dir = tmp_path / "data"
    service = ServiceProcess(data_dir, *ARGS, headers=HEADERS).start()
    try:
        http = service.client()
        fid = http.post("/v1/functions", json={"name": "colour"}).json()["id"]
        acknowledged = _add(http, fid, 40, 0)
        assert http.post(f"/v1/functions/{fid}/train").json()["version"] == 1
        acknowledged += _add(http, fid, 160, 100)  # enough that training takes a moment

        # 1. kill while a training runs.
        assert http.post(f"/v1/functions/{fid}/train", params={"wait": "false"}).status_code == 202
        wait_until(
            lambda: http.get(f"/v1/functions/{fid}/training").json()["state"] == "training",
            interval=0.005,
            what="training to start",
        )
        service.kill()
    finally:
        service.stop()

    # 2. a crash in the middle of / right after writing an artifact: a temp file and a finished
    # file the database never recorded.
    models = data_dir / "models" / fid
    (models / ".tmp-v2-crashed").write_bytes(b"half an artifact")
    (models / "v2.joblib").write_bytes(b"complete but never recorded")
    os.sync()

    service = ServiceProcess(data_dir, *ARGS, headers=HEADERS).start()
    try:
        http = service.client()
        function = http.get(f"/v1/functions/{fid}").json()
        assert function["deployedVersion"] == 1 and function["sampleCount"] == len(acknowledged)
        assert {
            s["id"]
            for s in http.get(f"/v1/functions/{fid}/samples", params={"count": 1000}).json()["data"]
        } == set(acknowledged)
        probe = http.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes(RED))})
        assert probe.status_code == 200 and probe.json()["modelVersion"] == 1
        assert not (models / ".tmp-v2-crashed").exists(), "startup sweep removes temp files"
        retrained = http.post(f"/v1/functions/{fid}/train").json()
        assert retrained["version"] == 3, "a number used by an unrecorded artifact is never reused"
        assert retrained["status"] == "deployed"
    finally:
        service.stop()

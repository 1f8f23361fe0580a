"""The data dir and everything winnow writes in it (the SQLite database and its -wal/-shm, blobs,
model artifacts, the admin key) are the owner's alone: directories 0700, files 0600, under the
usual umask 022, and a data dir an earlier winnow left world-readable is tightened at start."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from service.settings import Settings
from tests.conftest import AUTH, add_colour_samples


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def loose_modes(data_dir: Path) -> dict[str, str]:
    """Everything under ``data_dir`` (itself included) whose mode lets anyone else in."""
    found = {}
    for path in [data_dir, *data_dir.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        if mode != (0o700 if path.is_dir() else 0o600):
            found[str(path.relative_to(data_dir))] = oct(mode)
    return found


def test_everything_under_the_data_dir_is_private(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", backbone="tiny-clip", retrain_interval=0, seed="0"
    )  # no admin_key setting: the generated one is written to the data dir too
    with TestClient(create_app(settings)) as client:
        key = (tmp_path / "data" / "admin-key").read_text().strip()
        client.headers["Authorization"] = f"Bearer {key}"
        fid = client.post("/v1/functions", json={"name": "f", "labels": ["red", "blue"]}).json()
        add_colour_samples(client, fid["id"], per_label=3)
        assert client.post(f"/v1/functions/{fid['id']}/train").status_code == 200
        names = {p.name for p in (tmp_path / "data").rglob("*")}
        assert {"winnow.db", "winnow.db-wal", "winnow.db-shm", "v0.joblib", "v1.joblib"} <= names
        assert loose_modes(tmp_path / "data") == {}


def test_a_world_readable_data_dir_is_tightened_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    settings = Settings(data_dir=data_dir, backbone="tiny-clip", retrain_interval=0)
    with TestClient(create_app(settings), headers=AUTH):
        assert data_dir.stat().st_mode & 0o777 == 0o700
    assert "tightened to 0700" in caplog.text

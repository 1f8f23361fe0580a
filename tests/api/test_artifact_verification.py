"""Model artifacts are checked against the SHA-256 digest their version row recorded before they
are unpickled: a planted file is refused unread (its code never runs), on local disk and in S3.
Versions an older winnow wrote (no digest) have theirs recorded at the first start after the
upgrade, so the upgrade takes no function down."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from api.app import create_app
from service.settings import Settings
from store import ModelVersion, make_engine, parse_s3_url, session_scope
from tests.conftest import AUTH, RED, add_colour_samples, data_uri, png_bytes
from tests.planted import planted_artifact


def plant(settings: Settings, function_id: str, version: int, marker: Path) -> None:
    """Replace a version's stored artifact with a well-formed joblib pickle that runs code."""
    data = planted_artifact(marker)
    name = f"models/{function_id}/v{version}.joblib"
    if settings.blob_store.startswith("s3://"):
        bucket, prefix = parse_s3_url(settings.blob_store)
        boto3.client("s3").put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=data)
    else:
        (Path(settings.data_dir) / name).write_bytes(data)


def invoke(client: TestClient, function_id: str) -> int:
    body = {"data": data_uri(png_bytes(RED, seed=40))}
    return client.post(f"/v1/functions/{function_id}/invoke", json=body).status_code


@pytest.mark.parametrize("where", ["file", "s3"])
def test_a_planted_artifact_is_refused_unread(
    settings: Settings, where: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if where == "s3":
        settings = Settings(
            **{**settings.__dict__, "blob_store": request.getfixturevalue("s3_url")}
        )
    marker = tmp_path / "planted-code-ran"
    with TestClient(create_app(settings), headers=AUTH) as client:
        fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
        add_colour_samples(client, fid, per_label=3)
        assert client.post(f"/v1/functions/{fid}/train").json()["version"] == 1
        plant(settings, fid, 1, marker)

        refused = client.post(f"/v1/functions/{fid}/models/1/deploy")
        assert refused.status_code == 409
        message = refused.json()["message"]
        assert "refused unread" in message and "SHA-256 digest" in message
        assert "does not match the recorded" in message
        assert invoke(client, fid) == 200  # the head loaded before keeps serving from memory
    with TestClient(create_app(settings), headers=AUTH) as restarted:  # start-up loads it again
        assert invoke(restarted, fid) == 503
    assert not marker.exists()


def test_versions_from_before_digests_are_adopted_at_the_first_start(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(settings), headers=AUTH) as client:
        fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
        add_colour_samples(client, fid, per_label=3)
        assert client.post(f"/v1/functions/{fid}/train").json()["version"] == 1
    engine = make_engine(settings.database)
    with session_scope(engine) as session:  # what an older winnow left: no digest recorded
        rows = session.exec(select(ModelVersion).where(ModelVersion.function_id == fid)).all()
        recorded = {row.version: row.artifact_sha256 for row in rows}
        for row in rows:
            row.artifact_sha256 = None
            session.add(row)

    with TestClient(create_app(settings), headers=AUTH) as upgraded:
        assert invoke(upgraded, fid) == 200  # the upgrade does not take the function down
        assert upgraded.post(f"/v1/functions/{fid}/models/1/deploy").status_code == 200
    assert f"{fid} v1" in caplog.text and "before digests were kept" in caplog.text
    with session_scope(engine) as session:
        rows = session.exec(select(ModelVersion).where(ModelVersion.function_id == fid)).all()
        assert {row.version: row.artifact_sha256 for row in rows} == recorded
    engine.dispose()

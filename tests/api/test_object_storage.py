"""The service on S3-compatible object storage (a real S3 endpoint: moto's server): blobs and model
artifacts live in the bucket, replicas with separate data dirs share them, and a store outage in
the middle of uploads loses no acknowledged sample and leaves nothing half-written."""

from __future__ import annotations

import threading
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from api.app import create_app
from service.runtime import Runtime
from service.settings import Settings
from store import ObjectStoreUnavailable, Sample, parse_s3_url, session_scope
from tests.conftest import AUTH, BLUE, RED, add_colour_samples, data_uri, png_bytes
from tests.databases import fresh_postgres_database
from tests.s3 import MotoS3


def keys(s3_url: str) -> set[str]:
    bucket, prefix = parse_s3_url(s3_url)
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    return {entry["Key"][len(prefix) + 1 :] for entry in listed.get("Contents", [])}


def files_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []


def test_blobs_and_models_live_in_the_bucket(settings: Settings, s3_url: str) -> None:
    settings = Settings(**{**settings.__dict__, "blob_store": s3_url})
    with TestClient(create_app(settings), headers=AUTH) as client:
        fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
        add_colour_samples(client, fid, per_label=3)
        assert client.post(f"/v1/functions/{fid}/train").status_code == 200
        invoked = client.post(
            f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes(RED, seed=50))}
        )
        assert invoked.status_code == 200 and invoked.json()["modelVersion"] == 1
        stored = keys(s3_url)
        assert f"models/{fid}/v1.joblib" in stored
        assert sum(k.startswith("blobs/") for k in stored) == 6
        sid = client.get(f"/v1/functions/{fid}/samples").json()["data"][0]["id"]
        image = client.get(f"/v1/functions/{fid}/samples/{sid}/image")
        assert image.status_code == 200 and image.content in {
            png_bytes(c, seed=s) for c in (RED, BLUE) for s in range(3)
        }
        assert files_under(Path(settings.data_dir) / "blobs") == []
        assert files_under(Path(settings.data_dir) / "models") == []
        assert client.delete(f"/v1/functions/{fid}").status_code == 204
        assert keys(s3_url) == set()


def test_a_missing_bucket_fails_the_start_with_its_name(settings: Settings, s3_url: str) -> None:
    settings = Settings(**{**settings.__dict__, "blob_store": "s3://no-such-bucket/x"})
    with pytest.raises(ObjectStoreUnavailable, match="s3://no-such-bucket"):
        Runtime(settings)


@pytest.mark.postgres
def test_a_replica_with_its_own_data_dir_serves_what_another_deployed(tmp_path, s3_url) -> None:
    with fresh_postgres_database() as database_url:
        common = {"backbone": "tiny-clip", "retrain_interval": 0, "seed": "0"}
        common |= {"admin_key": "k", "database_url": database_url, "blob_store": s3_url}
        a = Settings(data_dir=tmp_path / "a", **common)
        b = Settings(data_dir=tmp_path / "b", **common)
        auth = {"Authorization": "Bearer k"}
        with (
            TestClient(create_app(a), headers=auth) as first,
            TestClient(create_app(b), headers=auth) as second,
        ):
            fid = first.post("/v1/functions", json={"name": "f"}).json()["id"]
            add_colour_samples(first, fid, per_label=3)
            assert first.post(f"/v1/functions/{fid}/train").status_code == 200
            body = {"data": data_uri(png_bytes(BLUE, seed=60))}
            served = second.post(f"/v1/functions/{fid}/invoke", json=body)
            assert served.status_code == 200, served.text
            assert served.json()["modelVersion"] == 1 and served.json()["labelName"] == "blue"
            sid = first.get(f"/v1/functions/{fid}/samples").json()["data"][0]["id"]
            assert second.get(f"/v1/functions/{fid}/samples/{sid}/image").status_code == 200
        assert (
            files_under(tmp_path / "a" / "models") == files_under(tmp_path / "b" / "models") == []
        )


def test_a_store_outage_mid_upload_loses_nothing_acknowledged(
    settings: Settings, s3_url: str, moto_server: MotoS3
) -> None:
    """Uploads run while the store goes down and comes back: each answer is 201 (stored, and
    its object is there) or 503 with a message (nothing of it written), never a 500."""
    settings = Settings(**{**settings.__dict__, "blob_store": s3_url})
    answers: list[tuple[int, dict]] = []
    outage, resumed = threading.Event(), threading.Event()
    with TestClient(create_app(settings), headers=AUTH) as client:
        fid = client.post("/v1/functions", json={"name": "f", "labels": ["red"]}).json()["id"]

        def post(seed: int) -> None:
            body = {"data": data_uri(png_bytes(RED, seed=1000 + seed))}
            response = client.post(f"/v1/functions/{fid}/samples", json=body)
            answers.append((response.status_code, response.json()))

        def upload() -> None:
            for seed in range(10):
                post(seed)
            outage.set()  # the store goes down now, between or during the next uploads
            seed = 10
            while not resumed.is_set() and seed < 200:
                post(seed)
                seed += 1
            for more in range(5):
                post(seed + more)

        worker = threading.Thread(target=upload)
        worker.start()
        assert outage.wait(timeout=60)
        moto_server.stop()
        try:
            while sum(status == 503 for status, _ in answers) < 3 and worker.is_alive():
                threading.Event().wait(0.05)
        finally:
            moto_server.start()
            resumed.set()
        worker.join(timeout=120)

        statuses = [status for status, _ in answers]
        assert set(statuses) <= {201, 503} and statuses.count(503) >= 3, statuses
        assert statuses[-1] == 201  # writes resume once the store is back
        for status, body in answers:
            if status == 503:
                assert "object store" in body["message"]
        acknowledged = {body["id"] for status, body in answers if status == 201}
        with session_scope(client.app.state.runtime.engine) as session:
            rows = session.exec(select(Sample).where(Sample.function_id == fid)).all()
        assert {row.id for row in rows} == acknowledged  # no row for a refused upload
        stored = keys(s3_url)
        assert all(f"blobs/{row.blob}" in stored for row in rows)  # no row without its object

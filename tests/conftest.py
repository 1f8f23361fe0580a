"""Shared fixtures: a fresh service per test on a temp data dir with the tiny test backbone."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from PIL import Image

from api.app import create_app
from bench.live import wait_until
from service.settings import Settings
from tests.databases import BACKENDS, backend_params, database_url_for
from tests.redis_server import REDIS_URL, redis_unreachable
from tests.s3 import MotoS3, moto_s3, new_bucket, point_boto3_at


def png_bytes(color: tuple[int, int, int], *, size: int = 32, seed: int = 0) -> bytes:
    """A small PNG of ``color`` with a little noise, so equal colours still give distinct images."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(color) + rng.normal(0, 12, (size, size, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


RED, BLUE, GREEN = (220, 30, 30), (30, 30, 220), (30, 200, 40)
# The capture policy of the new-class proposal tests: after training on red and blue, unseen green
# inputs are novel and captured whatever the adaptive threshold (near-duplicates of noisy solid
# colours are common with the tiny test backbone, so they are let through), and form a proposal.
PROPOSAL_POLICY = {
    "noveltyThreshold": 0.9,
    "proposalMinSize": 4,
    "proposalTightness": 2.0,
    "duplicateSimilarity": 1.0,
    "randomRate": 0.0,
    "maxPerHour": 1000,
    "maxPerDay": 1000,
}
# The admin key of the default settings, and the header that sends it.
ADMIN_KEY = "test-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=BACKENDS + ("both",),
        default=None,
        help="database backend of every test that uses `settings` (default: tests marked "
        "`databases` run on both, the others on sqlite)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run tests marked ``databases`` once per backend; ``--db`` overrides the choice for all."""
    if "database_url" not in metafunc.fixturenames:
        return
    chosen = metafunc.config.getoption("--db")
    if chosen is None:
        if not metafunc.definition.get_closest_marker("databases"):
            return  # the default: SQLite only, test ids unchanged
        chosen = "both"
    backends = BACKENDS if chosen == "both" else (chosen,)
    metafunc.parametrize("database_url", backend_params(backends), indirect=True)


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """SQLite in the data dir (""), or a fresh PostgreSQL database dropped after the test."""
    with database_url_for(getattr(request, "param", "sqlite")) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        backbone="tiny-clip",
        retrain_interval=0,
        seed="0",
        admin_key=ADMIN_KEY,
        database_url=database_url,
        snapshot_poll=0.05,  # replicas follow each other within it
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A client of a fresh service that sends the admin key unless a request overrides it."""
    with TestClient(create_app(settings), headers=AUTH) as test_client:
        yield test_client


def wait_for_novelty(client: TestClient | httpx.Client, function_id: str) -> None:
    """Wait until invokes are scored for novelty: the serving worker fits the model after a
    deploy, off the invoke path. Probes with a labelled sample (a duplicate: never captured)."""
    body = {"data": data_uri(png_bytes(RED, seed=0))}

    def scored() -> bool:
        answer = client.post(f"/v1/functions/{function_id}/invoke", json=body).json()
        return answer["capture"]["novelty"] is not None

    wait_until(scored, what="the novelty model")


def add_colour_samples(client: TestClient, function_id: str, per_label: int = 6) -> None:
    for i in range(per_label):
        for name, colour in (("red", RED), ("blue", BLUE)):
            body = {"data": data_uri(png_bytes(colour, seed=i)), "annotation": {"labelName": name}}
            response = client.post(f"/v1/functions/{function_id}/samples", json=body)
            assert response.status_code == 201, response.text


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoS3]:
    """One S3 endpoint (moto's server) for the whole run; tests get their own buckets."""
    with moto_s3() as server:
        yield server


@pytest.fixture
def s3_url(moto_server: MotoS3, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<fresh bucket>/winnow``, with boto3 pointed at the test endpoint."""
    point_boto3_at(monkeypatch, moto_server.url)
    return f"s3://{new_bucket()}/winnow"


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A client of the test Redis server (WINNOW_TEST_REDIS); skips with the reason without one."""
    reason = redis_unreachable()
    if reason is not None:
        pytest.skip(reason)
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()

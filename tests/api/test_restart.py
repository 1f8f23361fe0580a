"""A restart keeps functions, samples and the deployed model."""

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from service.settings import Settings
from tests.conftest import AUTH, BLUE, add_colour_samples, data_uri, png_bytes

# Runs on SQLite and on a fresh PostgreSQL database (tests/databases.py).
pytestmark = pytest.mark.databases


def test_restart_keeps_state(settings: Settings) -> None:
    probe = {"data": data_uri(png_bytes(BLUE, seed=42))}
    with TestClient(create_app(settings), headers=AUTH) as client:
        fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
        add_colour_samples(client, fid, per_label=4)
        assert client.post(f"/v1/functions/{fid}/train").status_code == 200
        before = client.post(f"/v1/functions/{fid}/invoke", json=probe).json()

    with TestClient(create_app(settings), headers=AUTH) as client:
        function = client.get(f"/v1/functions/{fid}").json()
        assert function["sampleCount"] == 8 and function["deployedVersion"] == 1
        after = client.post(f"/v1/functions/{fid}/invoke", json=probe).json()
        assert after == before


def test_health_reports_backbone(client: TestClient, settings: Settings) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["backbone"] == "tiny-clip"
    assert health["database"] == ("postgresql" if settings.database_url else "sqlite")
    assert client.get("/docs").status_code == 200
    assert "/v1/functions/{function_id}/invoke" in client.get("/openapi.json").json()["paths"]


def test_restart_keeps_the_capture_budget_used(settings: Settings) -> None:
    def invoke(client: TestClient, fid: str, seed: int) -> dict:
        probe = {"data": data_uri(png_bytes(BLUE, seed=seed))}
        return client.post(f"/v1/functions/{fid}/invoke", json=probe).json()["capture"]

    def status(client: TestClient, fid: str) -> dict:
        return client.get(f"/v1/functions/{fid}/capture-policy").json()["status"]

    with TestClient(create_app(settings), headers=AUTH) as client:
        fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
        add_colour_samples(client, fid, per_label=4)
        assert client.post(f"/v1/functions/{fid}/train").status_code == 200
        policy = {"maxPerHour": 2, "randomRate": 1.0, "duplicateSimilarity": 1.0}
        assert client.put(f"/v1/functions/{fid}/capture-policy", json=policy).status_code == 200
        taken = [invoke(client, fid, seed)["captured"] for seed in range(100, 103)]
        assert taken == [True, True, False]

    with TestClient(create_app(settings), headers=AUTH) as client:
        assert status(client, fid)["capturesLastHour"] == 2
        assert status(client, fid)["capturesLastDay"] == 2
        assert invoke(client, fid, 103)["captured"] is False  # still no budget this hour
        assert client.get(f"/v1/functions/{fid}/review/counts").json()["pending"] == 2

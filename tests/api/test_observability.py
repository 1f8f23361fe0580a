"""GET /metrics: the counts match what the service did, route labels are templates, admin only."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from service.settings import Settings
from tests.conftest import AUTH, add_colour_samples, data_uri, png_bytes

INVOKE_ROUTE = "/v1/functions/{function_id}/invoke"
PURPLE, GREEN = (120, 30, 120), (30, 200, 30)


def scrape(client: TestClient) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name -> (labels, value) of every sample /metrics returns."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when none)."""
    return sum(v for have, v in samples.get(name, []) if labels.items() <= have.items())


def test_metrics_count_what_the_service_did(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "colours", "labels": ["red", "blue"]}).json()
    fid = fid["id"]
    empty_fid = client.post("/v1/functions", json={"name": "empty"}).json()["id"]
    add_colour_samples(client, fid, per_label=6)
    trained = client.post(f"/v1/functions/{fid}/train")
    assert trained.status_code == 200 and trained.json()["status"] == "deployed", trained.text
    policy = {"randomRate": 0.5, "duplicateSimilarity": 0.999}
    assert client.put(f"/v1/functions/{fid}/capture-policy", json=policy).status_code == 200

    reasons: Counter[str] = Counter()
    invokes = 0
    for seed in range(8):
        colour = PURPLE if seed % 2 else GREEN
        body = {"data": data_uri(png_bytes(colour, seed=seed))}
        response = client.post(f"/v1/functions/{fid}/invoke", json=body)
        assert response.status_code == 200, response.text
        invokes += 1
        capture = response.json()["capture"]
        if capture["captured"]:
            reasons[capture["reason"]] += 1
    body = {"data": data_uri(png_bytes(GREEN, seed=99))}
    assert client.post(f"/v1/functions/{fid}/invoke?capture=false", json=body).status_code == 200
    invokes += 1
    assert sum(reasons.values()) > 0  # the random slice alone captures about half
    assert client.get("/v1/no/such/route").status_code == 404

    samples = scrape(client)
    requests = "winnow_http_requests_total"
    assert value(samples, requests, route=INVOKE_ROUTE, method="POST", status="200") == invokes
    assert value(samples, requests, route="/v1/functions/{function_id}/samples") == 12
    assert value(samples, requests, route="(unmatched)", status="404") == 1
    assert not any(fid in labels["route"] for labels, _ in samples[requests])
    latency = "winnow_http_request_duration_seconds_count"
    assert value(samples, latency, route=INVOKE_ROUTE) == invokes

    assert value(samples, "winnow_training_runs_total") == 1
    assert value(samples, "winnow_training_runs_total", outcome="deployed", trigger="manual") == 1
    assert value(samples, "winnow_training_duration_seconds_count", outcome="deployed") == 1
    assert value(samples, "winnow_deploy_decisions_total", decision="deployed") == 1
    assert value(samples, "winnow_deploy_decisions_total", decision="rejected") == 0

    stats = client.app.state.runtime.encoders.get("").stats()  # type: ignore[attr-defined]
    assert value(samples, "winnow_encoder_batch_images_count") == stats.batches_run > 0
    assert value(samples, "winnow_encoder_batch_images_sum") == stats.images_encoded >= 12 + invokes
    assert value(samples, "winnow_encoder_batch_seconds_count") == stats.batches_run
    assert value(samples, "winnow_encoder_queue_images") == 0  # every request has its answer

    captured = {labels["reason"]: v for labels, v in samples["winnow_captures_total"]}
    assert captured == dict(reasons)
    pending = "winnow_review_queue_pending"
    assert value(samples, pending, function_id=fid) == sum(reasons.values())
    assert ({"function_id": empty_fid}, 0.0) in samples[pending]


def test_a_refused_training_is_counted_without_a_decision(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "one", "labels": ["red"]}).json()["id"]
    body = {"data": data_uri(png_bytes((220, 30, 30))), "annotation": {"labelName": "red"}}
    assert client.post(f"/v1/functions/{fid}/samples", json=body).status_code == 201
    assert client.post(f"/v1/functions/{fid}/train").status_code == 409

    samples = scrape(client)
    assert value(samples, "winnow_training_runs_total", outcome="not_enough_data") == 1
    assert value(samples, "winnow_deploy_decisions_total") == 0


def test_metrics_need_an_admin_key_for_every_function(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]

    def key(body: dict) -> dict[str, str]:
        created = client.post("/v1/keys", json={"name": "k", **body})
        assert created.status_code == 201, created.text
        return {"Authorization": f"Bearer {created.json()['key']}"}

    anonymous = TestClient(client.app)
    assert anonymous.get("/metrics").status_code == 401
    no_admin = key({"scopes": ["invoke", "annotate"]})
    assert anonymous.get("/metrics", headers=no_admin).status_code == 403
    # a tenant's admin key would see every tenant's function ids
    tenant_admin = key({"scopes": ["admin"], "functionId": fid})
    assert anonymous.get("/metrics", headers=tenant_admin).status_code == 403
    global_admin = key({"scopes": ["admin"]})
    assert anonymous.get("/metrics", headers=global_admin).status_code == 200


def test_metrics_off_removes_the_endpoint(settings: Settings) -> None:
    app = create_app(dataclasses.replace(settings, metrics=False))
    with TestClient(app, headers=AUTH) as off:
        assert off.get("/metrics").status_code == 404
        assert "/metrics" not in off.get("/openapi.json").json()["paths"]
        assert off.get("/health").status_code == 200


def test_each_app_has_its_own_registry(settings: Settings, tmp_path: Path) -> None:
    """Two apps in one process: no duplicate-registration error, no shared counts."""
    first = create_app(settings)
    second = create_app(dataclasses.replace(settings, data_dir=tmp_path / "second"))
    with TestClient(first, headers=AUTH) as one:
        one.get("/health")
        with TestClient(second, headers=AUTH) as two:
            assert value(scrape(two), "winnow_http_requests_total", route="/health") == 0
        assert value(scrape(one), "winnow_http_requests_total", route="/health") == 1

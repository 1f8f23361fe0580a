"""Property-based API testing: schemathesis against the app's own OpenAPI schema, in process.

Every operation gets generated inputs, valid and invalid (schemathesis' positive and negative
modes), sent through the ASGI transport to ``create_app(settings)`` with the admin key. Each
response must not be a 5xx, must have a documented status code and must match the documented
schema. Path parameters are half the time swapped for real ids (a trained function, a sample, a
review item, version 1), so generated requests reach past the 404s into the handlers; DELETE
operations get their own victims so the shared objects stay alive.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.modes import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans

from api.app import create_app
from service.settings import Settings
from tests.conftest import AUTH, RED, add_colour_samples, data_uri, png_bytes

# Per operation and generation mode: ~1000 requests in all. WINNOW_FUZZ_EXAMPLES=200 digs deeper.
MAX_EXAMPLES = int(os.environ.get("WINNOW_FUZZ_EXAMPLES", "15"))
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
CALLS: Counter[str] = Counter()  # requests sent per operation, for the summary below


def _real_objects(client: TestClient) -> dict[str, dict[str, Any]]:
    """Create the objects generated requests are pointed at; returns ids by role."""
    fid = client.post("/v1/functions", json={"name": "fuzzed", "labels": ["red", "blue"]}).json()
    fid = fid["id"]
    add_colour_samples(client, fid, per_label=3)
    assert client.post(f"/v1/functions/{fid}/train").status_code == 200
    policy = {"randomRate": 1.0, "duplicateSimilarity": 0.999}
    assert client.put(f"/v1/functions/{fid}/capture-policy", json=policy).status_code == 200
    items = []
    for seed in range(3):
        body = {"data": data_uri(png_bytes((120, 30, 120), seed=seed))}
        invoked = client.post(f"/v1/functions/{fid}/invoke", json=body).json()
        items.append(invoked["capture"]["itemId"])
    sample = client.get(f"/v1/functions/{fid}/samples").json()["data"][0]["id"]
    victim_fid = client.post("/v1/functions", json={"name": "victim"}).json()["id"]
    body = {"data": data_uri(png_bytes(RED, seed=99))}
    victim_sample = client.post(f"/v1/functions/{victim_fid}/samples", json=body).json()["id"]
    victim_key = client.post("/v1/keys", json={"scopes": ["invoke"]}).json()["id"]
    label = client.get(f"/v1/functions/{fid}/labels").json()["data"][0]["id"]
    victim_label = client.post(f"/v1/functions/{victim_fid}/labels", json={"name": "v"}).json()
    shared = {
        "function_id": fid,
        "sample_id": sample,
        "item_id": items[0],
        "label_id": label,
        "version": 1,
    }
    victims = {
        "function_id": victim_fid,
        "sample_id": victim_sample,
        "label_id": victim_label["id"],
        "key_id": victim_key,
    }
    return {"shared": shared, "victims": victims}


@pytest.fixture
def api_schema(settings: Settings) -> Iterator[Any]:
    CALLS.clear()
    with TestClient(create_app(settings), headers=AUTH) as client:
        objects = _real_objects(client)
    # A fresh app on the same data: schemathesis runs its lifespan. Its generated client secrets
    # on /nyckel/connect/token would get its one address refused (429) for every later operation.
    app = create_app(dataclasses.replace(settings, auth_failures_per_minute=0))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        if not path_parameters:
            return st.just(path_parameters)
        method = context.operation.method.upper() if context.operation else ""
        ids = objects["victims" if method == "DELETE" else "shared"]
        real = {name: ids.get(name, value) for name, value in path_parameters.items()}
        return st.sampled_from([path_parameters, real])

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> Any:
        """Sometimes a real image in ``data``, so uploads and invokes get past decoding."""
        if not isinstance(body, dict) or not isinstance(body.get("data"), str):
            return st.just(body)
        image = data_uri(png_bytes(RED, seed=len(json.dumps(body, default=str))))
        return st.sampled_from([body, {**body, "data": image}])

    yield schema
    shutdown_lifespans()  # closes the app's runtime (encoders, engine)
    if CALLS:
        print(f"\nschemathesis: {sum(CALLS.values())} requests over {len(CALLS)} operations")


def test_api_conforms_to_its_schema(api_schema: Any) -> None:
    """Every operation, positive and negative inputs: no 5xx, documented statuses and bodies."""
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        inputs = (operation.path_parameters, operation.query, operation.headers, operation.body)
        # GET /health takes nothing, so there is nothing to make invalid.
        modes = list(GenerationMode) if any(inputs) else [GenerationMode.POSITIVE]
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,  # no example database: each run explores afresh
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                CALLS[case.operation.label] += 1
                case.call_and_validate(headers=AUTH, checks=CHECKS)

            try:
                check()  # hypothesis shrinks a failure to a minimal input before raising it
            except (Exception, BaseExceptionGroup) as exc:  # every operation gets reported
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)

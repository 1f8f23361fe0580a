"""Serving snapshots: invokes read one snapshot and fit nothing; refits run in the worker; resident
functions stay within the memory budget and an evicted one answers as before."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

import service.invoke
from api.app import create_app
from capture.cold_start import ColdStartSelector
from capture.novelty import NoveltyModel
from service.runtime import Runtime
from service.serving import settle
from service.settings import Settings
from tests.api.test_cold_start import function_without_labels, invoke_all, traffic
from tests.conftest import AUTH, RED, add_colour_samples, data_uri, png_bytes

WORKER = "winnow-snapshots"


def runtime(client: TestClient) -> Runtime:
    rt: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    return rt


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """Every cold-start refit, novelty fit and traffic calibration, with the thread it ran in."""
    calls: list[tuple[str, str]] = []

    def recorded(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, threading.current_thread().name))
            return method(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(ColdStartSelector, "fit", recorded("cold_start", ColdStartSelector.fit))
    monkeypatch.setattr(NoveltyModel, "__init__", recorded("novelty", NoveltyModel.__init__))
    monkeypatch.setattr(
        NoveltyModel, "calibrate_to", recorded("calibration", NoveltyModel.calibrate_to)
    )
    yield calls


def test_invokes_fit_nothing_and_the_worker_does_every_refit(
    client: TestClient, fits: list[tuple[str, str]]
) -> None:
    rt = runtime(client)
    fid = function_without_labels(client)
    stream = traffic(400)
    for start in range(0, 400, 50):  # cold start: the reservoir is clustered every 100 inputs
        invoke_all(client, fid, stream[start : start + 50])
        assert settle(rt)
    cold_start = [thread for name, thread in fits if name == "cold_start"]
    assert len(cold_start) >= 3 and set(cold_start) == {WORKER}

    add_colour_samples(client, fid, per_label=12)
    assert client.post(f"/v1/functions/{fid}/train").json()["status"] == "deployed"
    for start in range(0, 300, 50):  # with a head: novelty fitted, then calibrated to traffic
        for _, image in traffic(300, seed=1)[start : start + 50]:
            answer = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(image)})
            assert answer.status_code == 200
        assert settle(rt)
    assert {name for name, _ in fits} == {"cold_start", "novelty", "calibration"}
    assert {thread for _, thread in fits} == {WORKER}  # never a request's thread


def test_an_invoke_answers_from_the_snapshot_it_started_with(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
    add_colour_samples(client, fid, per_label=4)
    for _ in range(2):
        assert client.post(f"/v1/functions/{fid}/train").json()["status"] == "deployed"
    rt, embed = runtime(client), service.invoke.embed_images_with
    rolled_back: list[int] = []

    def embed_then_roll_back(*args: Any, **kwargs: Any) -> Any:
        vectors = embed(*args, **kwargs)
        if not rolled_back:  # a deploy lands while this request is between reads
            rolled_back.append(service.deploys.deploy_version(rt, fid, 1, pin=False).version)
        return vectors

    monkeypatch.setattr(service.invoke, "embed_images_with", embed_then_roll_back)
    probe = {"data": data_uri(png_bytes(RED, seed=5))}
    first = client.post(f"/v1/functions/{fid}/invoke", json=probe).json()
    assert rolled_back == [1] and first["modelVersion"] == 2  # what it started with, throughout
    assert client.post(f"/v1/functions/{fid}/invoke", json=probe).json()["modelVersion"] == 1


@pytest.mark.parametrize("budget_mb", [0.3])
def test_resident_functions_stay_within_the_budget_and_evicted_ones_answer_the_same(
    settings: Settings, budget_mb: float
) -> None:
    settings = dataclasses.replace(settings, snapshot_memory_mb=budget_mb)
    with TestClient(create_app(settings), headers=AUTH) as client:
        rt = runtime(client)
        functions = {}
        for i in range(6):
            fid = client.post("/v1/functions", json={"name": f"f{i}"}).json()["id"]
            add_colour_samples(client, fid, per_label=3)
            for _ in range(1 + i % 2):  # versions 1 and 2 alternate: each answers its own
                assert client.post(f"/v1/functions/{fid}/train").json()["status"] == "deployed"
            functions[fid] = 1 + i % 2
        probe = {"data": data_uri(png_bytes(RED, seed=3))}
        for _ in range(3):
            for fid, version in functions.items():
                answer = client.post(f"/v1/functions/{fid}/invoke", json=probe).json()
                assert answer["modelVersion"] == version and answer["labelName"] == "red"
                assert settle(rt)
                resident = rt.serving.resident()
                assert rt.serving.total_bytes() <= rt.serving.budget_bytes or len(resident) == 1
        assert len(rt.serving.resident()) < len(functions)  # some were evicted, and came back
        metrics = client.get("/metrics").text
        evictions = next(
            line for line in metrics.splitlines() if line.startswith("winnow_snapshot_evictions")
        )
        assert float(evictions.split()[-1]) > 0


def test_the_service_process_runs_blas_with_one_thread(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenBLAS's extra threads spin-wait while the encoder keeps the cores busy: a started
    service caps BLAS at service.startup.BLAS_THREADS (1) for the process, through
    threadpoolctl (how the cap then reads per thread is OpenBLAS's business, so the test checks
    the call)."""
    import service.startup

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(service.startup, "threadpool_limits", lambda **kw: calls.append(kw))
    assert calls == []
    with TestClient(create_app(settings), headers=AUTH):
        assert calls == [{"limits": 1, "user_api": "blas"}]

"""The traffic sample: invokes buffer their distinct inputs, the serving worker flushes them into
the database, training offers the semi-supervised candidate from them, and they outlive a
restart but not their function."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import onnxruntime
import pytest
from fastapi.testclient import TestClient
from sqlmodel import func, select

import service.training
from api.app import create_app
from learner import Candidate, train_head
from learner.onnx_head import head_to_onnx
from service.runtime import Runtime
from service.settings import Settings
from service.traffic_sample import TrafficSample
from store import Function, TrafficVector, make_engine, session_scope
from tests.api.live import wait_until
from tests.conftest import AUTH, add_colour_samples, data_uri, png_bytes


def runtime(client: TestClient) -> Runtime:
    return client.app.state.runtime  # type: ignore[attr-defined,no-any-return]


def distinct_images(count: int, seed: int = 0) -> list[bytes]:
    """Images of random colours: far enough apart for the tiny backbone to tell them apart."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, size=(count, 3))
    return [png_bytes(tuple(int(c) for c in colour), seed=i) for i, colour in enumerate(colours)]  # type: ignore[arg-type]


def invoke_all(client: TestClient, fid: str, images: list[bytes]) -> None:
    for start in range(0, len(images), 32):
        items = [{"data": data_uri(image)} for image in images[start : start + 32]]
        response = client.post(f"/v1/functions/{fid}/invoke/batch", json={"items": items})
        assert response.status_code == 200, response.text


def stored_rows(rt: Runtime, fid: str) -> int:
    with session_scope(rt.engine) as session:
        count = select(func.count()).select_from(TrafficVector)
        return int(session.exec(count.where(TrafficVector.function_id == fid)).one())


@pytest.fixture
def sampled(settings: Settings) -> Settings:
    """The worker never flushes by itself during a test: the tests flush when they mean to."""
    return Settings(**{**vars(settings), "traffic_flush_seconds": 3600.0})


def test_the_buffer_is_a_bounded_uniform_sample_written_once(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        sample = TrafficSample(engine, size=100, seed=0)
        assert sample.flush_rows == 10
        sample.offer("function_gone", None, np.eye(4, dtype=np.float32))
        assert sample.pending("function_gone") == 4
        assert sample.flush() == 0  # no such function: nothing written, nothing kept
        assert sample.pending("function_gone") == 0

        kept = np.zeros(1000)
        for _ in range(200):
            sample.offer("f", None, np.arange(100, dtype=np.float32)[:, None] * np.ones((1, 4)))
            with sample._lock:
                rows = np.stack(sample._buffers.pop(("f", None)).rows)
            assert rows.shape == (10, 4) and len(set(rows[:, 0])) == 10
            kept[rows[:, 0].astype(int)] += 1
        # each of the 100 offered rows is kept with probability 1/10: 20 times in 200 on average
        assert kept[:100].min() > 5 and kept[:100].max() < 40
        assert TrafficSample(engine, size=0).read("f") is None  # off: nothing read
    finally:
        engine.dispose()


def test_a_batch_of_a_space_the_function_left_is_dropped(tmp_path) -> None:
    """Vectors buffered before the function's vectors moved to space 7 never reach its ring."""
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        with session_scope(engine) as session:
            function = Function(name="moved", backbone="tiny-clip", vector_space=7)
            session.add(function)
        fid = function.id
        sample = TrafficSample(engine, size=100, seed=0)
        old, new = np.zeros((3, 4), dtype=np.float32), np.ones((2, 4), dtype=np.float32)
        sample.offer(fid, None, old)
        sample.offer(fid, 7, new)
        assert sample.pending(fid) == 5
        assert sample.flush() == 2
        assert sample.pending(fid) == 0
        traffic = sample.read(fid)
        assert traffic is not None and np.array_equal(traffic, new)

        sample.offer(fid, None, old)
        sample.offer(fid, 7, new)
        sample.drop(fid)
        assert sample.pending(fid) == 0
    finally:
        engine.dispose()


def test_training_learns_from_the_traffic_invokes_left(sampled: Settings) -> None:
    with TestClient(create_app(sampled), headers=AUTH) as client:
        rt = runtime(client)
        fid = client.post("/v1/functions", json={"name": "colours"}).json()["id"]
        images = distinct_images(120)
        invoke_all(client, fid, images)
        buffered = rt.traffic_sample.pending(fid)
        window = rt.novelty.window(fid)
        # what joined the traffic window (the tiny backbone finds a few colours alike)
        assert window is not None and buffered == window.seen and 100 <= buffered <= 120
        invoke_all(client, fid, images[:20])  # repeats are not buffered again
        assert rt.traffic_sample.pending(fid) == buffered
        assert stored_rows(rt, fid) == 0  # no invoke wrote to the database
        assert rt.traffic_sample.flush() == buffered
        assert stored_rows(rt, fid) == buffered
        assert rt.traffic_sample.pending(fid) == 0

        add_colour_samples(client, fid)  # 12 labelled samples: fewer than twice the traffic
        response = client.post(f"/v1/functions/{fid}/train")
        assert response.status_code == 200, response.text
        scores = response.json()["metrics"]["cvScores"]
        names = {score["name"] for score in scores}
        assert {"label_spreading", "logistic_regression"} <= names
        assert all({"candidate", "accuracy", "logLoss", "foldAccuracies"} <= set(s) for s in scores)
        history = client.get(f"/v1/functions/{fid}/models").json()["data"][0]
        assert history["metrics"]["cvScores"] == scores


@pytest.mark.databases
def test_the_sample_outlives_a_restart_and_goes_with_its_function(sampled: Settings) -> None:
    with TestClient(create_app(sampled), headers=AUTH) as client:
        fid = client.post("/v1/functions", json={"name": "colours"}).json()["id"]
        invoke_all(client, fid, distinct_images(30))
        assert stored_rows(runtime(client), fid) == 0
    # a graceful stop flushed the buffer; a new process reads what the last one wrote
    with TestClient(create_app(sampled), headers=AUTH) as client:
        rt = runtime(client)
        traffic = rt.traffic_sample.read(fid)
        assert traffic is not None and traffic.shape[0] == stored_rows(rt, fid) > 0
        assert np.allclose(np.linalg.norm(traffic, axis=1), 1.0, atol=1e-4)

        invoke_all(client, fid, distinct_images(10, seed=1))
        assert client.delete(f"/v1/functions/{fid}").status_code in (200, 204)
        assert rt.traffic_sample.pending(fid) == 0  # the buffer went too
        assert rt.traffic_sample.flush() == 0
        assert stored_rows(rt, fid) == 0


@pytest.mark.databases
def test_replicas_write_into_one_bounded_ring(sampled: Settings) -> None:
    small = Settings(**{**vars(sampled), "traffic_sample_size": 20})  # 2 rows a flush
    with (
        TestClient(create_app(small), headers=AUTH) as one,
        TestClient(create_app(small), headers=AUTH) as two,
    ):
        fid = one.post("/v1/functions", json={"name": "colours"}).json()["id"]
        replicas = [runtime(one), runtime(two)]
        for round_ in range(8):
            for r, (client, rt) in enumerate(zip((one, two), replicas, strict=True)):
                invoke_all(client, fid, distinct_images(3, seed=100 * round_ + r))
                assert rt.traffic_sample.flush() == 2
        assert stored_rows(replicas[0], fid) == 20
        with session_scope(replicas[1].engine) as session:
            assert (
                session.exec(select(Function.traffic_written).where(Function.id == fid)).one() == 32
            )


def test_the_serving_worker_flushes_on_its_own(settings: Settings) -> None:
    fast = Settings(**{**vars(settings), "traffic_flush_seconds": 0.05})
    with TestClient(create_app(fast), headers=AUTH) as client:
        rt = runtime(client)
        fid = client.post("/v1/functions", json={"name": "colours"}).json()["id"]
        invoke_all(client, fid, distinct_images(8))
        wait_until(lambda: stored_rows(rt, fid) > 0, what="the worker's flush")


@pytest.fixture
def spreading_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Training proposes the semi-supervised candidate alone, so that it is the one deployed."""

    def only_spreading(X: np.ndarray, y: Any, *, unlabeled: Any = None, **_: Any) -> Any:
        assert unlabeled is not None, "training read no traffic"
        return train_head(X, y, candidates=[Candidate("label_spreading", {}, unlabeled=unlabeled)])

    monkeypatch.setattr(service.training, "train_head", only_spreading)
    yield


@pytest.mark.usefixtures("spreading_only")
def test_a_label_spreading_head_serves_and_exports(sampled: Settings) -> None:
    with TestClient(create_app(sampled), headers=AUTH) as client:
        rt = runtime(client)
        fid = client.post("/v1/functions", json={"name": "colours"}).json()["id"]
        invoke_all(client, fid, distinct_images(100))
        rt.traffic_sample.flush()
        add_colour_samples(client, fid)
        first = client.post(f"/v1/functions/{fid}/train")
        assert first.status_code == 200, first.text
        assert first.json()["head"] == "label_spreading" and first.json()["status"] == "deployed"
        # retrained: the champion's recipe is rebuilt with the traffic for the same-folds basis
        add_colour_samples(client, fid, per_label=8)
        second = client.post(f"/v1/functions/{fid}/train").json()
        (same_folds,) = [c for c in second["decision"]["comparisons"] if c["basis"] == "same_folds"]
        assert same_folds["n"] > 0 and same_folds["championAccuracy"] is not None, same_folds

        version = second["version"] if second["status"] == "deployed" else first.json()["version"]
        head = rt.heads.get(fid)
        assert head is not None and head.version == version
        probe = np.asarray(rt.traffic_sample.read(fid), dtype=np.float32)[:10]
        exported_head = onnx_proba(head.head, probe)
        assert np.abs(exported_head - head.head.predict_proba(probe)).max() < 1e-4
        exported = client.get(f"/v1/functions/{fid}/model.onnx")
        assert exported.status_code == 200, exported.text
        onnxruntime.InferenceSession(exported.content, providers=["CPUExecutionProvider"])
        for page in ("/dashboard", f"/dashboard?function={fid}"):
            assert client.get(page).status_code == 200


def onnx_proba(head: Any, X: np.ndarray) -> np.ndarray:
    """The head's probabilities of ``X`` as its ONNX graph computes them."""
    model = head_to_onnx(head, X.shape[1], opset=18)
    session = onnxruntime.InferenceSession(model.SerializeToString())
    return np.asarray(session.run(["probabilities"], {"features": X})[0])

"""A function's stored vectors follow the space of the version that serves it (service.spaces):
deploying a tuned version moves every sample, review item and capture rule to its tower's
features and empties the traffic sample; rolling back moves them back; a write embedded in the
old space meanwhile is embedded again; a head trained in a space the vectors have left is not
deployed; a replica started afterwards serves in the new space. Offline backbone
(EfficientNet-Lite0), with a tuned tail made by hand (perturbed weights): what is measured here
is where vectors go, not how tuning chooses weights."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import select

from api.app import create_app
from embeddings.tuning import split_tower
from learner.champion import DeployDecision
from learner.finetune import TUNED_HEAD, TunedHead, TunedModel
from service import samples as sample_service
from service.deploys import deploy_version, record_version
from service.invoke import stored_model
from service.runtime import Runtime
from service.settings import Settings
from store import (
    Function,
    LabelChange,
    ModelVersion,
    ReviewItem,
    Sample,
    TrafficVector,
    lock_space,
    read_traffic,
    session_scope,
    vector_from_bytes,
)
from tests.api.test_finetune import AUTH, _digits, _invoke, _upload
from tests.conftest import data_uri

SPEC = "efficientnet-lite0"


@pytest.fixture
def settings(tmp_path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        backbone=SPEC,
        retrain_interval=0,
        admin_key="k",
        seed="0",
        precision="fp32",  # a vector embedded alone or in a batch is the same to 1e-4
        traffic_flush_seconds=3600,  # flushed by the test
    )


def tuned_version(rt: Runtime, function_id: str, *, deploy: bool) -> ModelVersion:
    """A tuned version cut 3 blocks deep (quicker than the default depth) whose tail's weights are
    perturbed."""
    tower = split_tower(SPEC, 3)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in tower.tail.parameters():
            weight.add_(0.05 * torch.randn(weight.shape, generator=generator))
    model = TunedModel(tower.tail, ["0", "1"], 1280, 3).eval()
    return record_version(
        rt,
        function_id,
        TunedHead(SPEC, model),
        DeployDecision(deploy=deploy, reason="made by the test", tolerance=0.0),
        labels=["0", "1"],
        label_counts={"0": 1, "1": 1},
        head=TUNED_HEAD,
        own_space=True,
    )


def trained_function(http: TestClient) -> str:
    """A function of 6 labelled digits with a first trained version."""
    fn: str = http.post("/v1/functions", json={"name": "digits"}).json()["id"]
    _upload(http, fn, _digits(3))
    assert http.post(f"/v1/functions/{fn}/train").json()["version"] == 1
    return fn


def stored(rt: Runtime, function_id: str) -> tuple[Function, list[str], np.ndarray, np.ndarray]:
    """The function, its rows' ids, their stored vectors and their images embedded now in the
    function's space."""
    with session_scope(rt.engine) as session:
        function = session.get(Function, function_id)
        rows = [
            *session.exec(
                select(Sample.id, Sample.blob, Sample.embedding).where(
                    Sample.function_id == function_id
                )
            ).all(),
            *session.exec(
                select(ReviewItem.id, ReviewItem.blob, ReviewItem.embedding).where(
                    ReviewItem.function_id == function_id
                )
            ).all(),
        ]
    assert function is not None
    images = [rt.blobs.get(blob) for _, blob, _ in rows]
    now = sample_service.embed_images(rt, function, images)
    vectors = np.stack([vector_from_bytes(e) for _, _, e in rows])
    return function, [i for i, _, _ in rows], vectors, np.stack(now)  # type: ignore[arg-type]


def backbone_vectors(rt: Runtime, function: Function, ids: list[str]) -> np.ndarray:
    with session_scope(rt.engine) as session:
        blobs = dict(session.exec(select(Sample.id, Sample.blob)).all())
        blobs.update(session.exec(select(ReviewItem.id, ReviewItem.blob)).all())
    images = [rt.blobs.get(blobs[i]) for i in ids]
    return np.stack(sample_service.embed_images_with(rt, function, images, None))  # type: ignore[arg-type]


def rule_vectors(http: TestClient, rt: Runtime, function_id: str) -> np.ndarray:
    from capture import CapturePolicy

    with session_scope(rt.engine) as session:
        function = session.get(Function, function_id)
        assert function is not None
        (rule,) = CapturePolicy.from_dict(function.capture_policy).rules
    return rule.matrix()


@pytest.mark.databases
def test_a_tuned_deploy_moves_every_vector_and_a_rollback_moves_them_back(
    settings: Settings,
) -> None:
    probe = _digits(1, offset=30)[1][0]
    with TestClient(create_app(settings), headers=AUTH) as http:
        rt = http.app.state.runtime  # type: ignore[attr-defined]
        fn = http.post("/v1/functions", json={"name": "digits"}).json()["id"]
        _upload(http, fn, _digits(4))
        ids = [s["id"] for s in http.get(f"/v1/functions/{fn}/samples").json()["data"]]
        rules = [
            {"name": "ones", "examples": ids[-2:], "similarity": 0.9},
            {"name": "gone", "examples": [ids[1]], "similarity": 0.9},
        ]
        assert (
            http.put(f"/v1/functions/{fn}/capture-policy", json={"rules": rules}).status_code == 200
        )
        assert http.post(f"/v1/functions/{fn}/train").json()["version"] == 1
        for data, _ in _digits(3, offset=20):
            _invoke(http, fn, data)
        rt.traffic_sample.flush()
        with session_scope(rt.engine) as session:
            assert read_traffic(session, function_id=fn) is not None
        assert http.delete(f"/v1/functions/{fn}/samples/{ids[1]}").status_code == 204
        function, row_ids, before, _ = stored(rt, fn)
        assert function.vector_space is None

        tuned = tuned_version(rt, fn, deploy=True)

        function, row_ids, after, in_space = stored(rt, fn)
        assert function.vector_space == tuned.version == function.deployed_version == 2
        assert tuned.vector_space == 2 and tuned.status == "deployed"
        np.testing.assert_allclose(after, in_space, atol=1e-4)
        assert not np.allclose(after, before, atol=1e-2)  # they did move
        with session_scope(rt.engine) as session:  # the traffic sample is emptied
            assert read_traffic(session, function_id=fn) is None
        ones = [row_ids.index(i) for i in ids[-2:]]
        np.testing.assert_allclose(rule_vectors(http, rt, fn), after[ones], atol=1e-6)
        policy = http.get(f"/v1/functions/{fn}/capture-policy").json()["policy"]
        assert [rule["name"] for rule in policy["rules"]] == ["ones"]  # no example left to embed
        public = http.get(f"/v1/functions/{fn}").json()
        assert public["vectorSpace"] == 2
        models = http.get(f"/v1/functions/{fn}/models").json()["data"]
        assert {m["version"]: m["vectorSpace"] for m in models} == {1: None, 2: 2}
        answer = _invoke(http, fn, probe)
        assert answer["modelVersion"] == 2 and answer["labelName"] in ("0", "1")
        # a search is asked in the same space: a stored image finds itself
        found = http.post(f"/v1/functions/{fn}/search", json={"data": data_uri(_digits(1)[0][0])})
        assert found.status_code == 200, found.text
        best = max(found.json()["data"], key=lambda hit: hit["similarity"])
        assert best["sampleId"] == ids[0] and best["similarity"] > 0.999

        # a head trained in the backbone's space, recorded after the move, is not deployed
        stale = record_version(
            rt,
            fn,
            stored_model(rt, fn, 1).head,
            DeployDecision(deploy=True, reason="made by the test", tolerance=0.0),
            labels=["0", "1"],
            label_counts={},
            head="logistic_regression",
            vector_space=None,
        )
        assert stale.status == "rejected" and "left space None" in stale.decision["reason"]

        assert http.post(f"/v1/functions/{fn}/models/1/deploy").status_code == 200

        function, row_ids, back, in_space = stored(rt, fn)
        assert function.vector_space is None and function.deployed_version == 1
        np.testing.assert_allclose(back, in_space, atol=1e-4)
        np.testing.assert_allclose(back, backbone_vectors(rt, function, row_ids), atol=1e-4)
        assert _invoke(http, fn, probe)["modelVersion"] == 1

        assert http.post(f"/v1/functions/{fn}/models/2/deploy").status_code == 200

    # a replica started afterwards serves in the tuned space and stores new samples there
    with TestClient(create_app(settings), headers=AUTH) as http:
        rt = http.app.state.runtime  # type: ignore[attr-defined]
        assert _invoke(http, fn, probe)["modelVersion"] == 2
        _upload(http, fn, _digits(1, offset=40))
        function, _, vectors, in_space = stored(rt, fn)
        assert function.vector_space == 2
        np.testing.assert_allclose(vectors, in_space, atol=1e-4)


def test_a_sample_embedded_while_the_vectors_move_is_embedded_again(settings: Settings) -> None:
    with TestClient(create_app(settings), headers=AUTH) as http:
        rt = http.app.state.runtime  # type: ignore[attr-defined]
        fn = trained_function(http)
        tuned = tuned_version(rt, fn, deploy=False)
        assert tuned.status == "rejected"
        with session_scope(rt.engine) as session:
            assert session.get(Function, fn).vector_space is None  # type: ignore[union-attr]

        embed_image, moves = sample_service.embed_image, []

        def move_meanwhile(rt_: Runtime, function: Function, data: bytes) -> np.ndarray:
            vector = embed_image(rt_, function, data)
            if not moves:  # the first embedding is in the backbone's space: now it moves
                moves.append(deploy_version(rt, fn, tuned.version, pin=False))
            return vector

        sample_service.embed_image = move_meanwhile  # type: ignore[assignment]
        try:
            _upload(http, fn, _digits(1, offset=12))
        finally:
            sample_service.embed_image = embed_image

        function, _, vectors, in_space = stored(rt, fn)
        assert len(moves) == 1 and function.vector_space == tuned.version
        assert len(vectors) == 8
        np.testing.assert_allclose(vectors, in_space, atol=1e-4)


def test_a_traffic_batch_of_the_old_space_is_not_written(settings: Settings) -> None:
    with TestClient(create_app(settings), headers=AUTH) as http:
        rt = http.app.state.runtime  # type: ignore[attr-defined]
        fn = trained_function(http)
        for data, _ in _digits(2, offset=20):
            _invoke(http, fn, data)  # buffered in the backbone's space, not flushed yet
        assert rt.traffic_sample.pending(fn) > 0

        tuned_version(rt, fn, deploy=True)
        rt.traffic_sample.flush()

        with session_scope(rt.engine) as session:
            rows = session.exec(select(TrafficVector).where(TrafficVector.function_id == fn))
            assert rows.all() == []


@pytest.mark.databases
def test_a_tuned_version_deployed_before_vector_spaces_moves_them_at_start(
    settings: Settings,
) -> None:
    with TestClient(create_app(settings), headers=AUTH) as http:
        rt = http.app.state.runtime  # type: ignore[attr-defined]
        fn = trained_function(http)
        tuned = tuned_version(rt, fn, deploy=False)
        with session_scope(rt.engine) as session:  # deployed as an older winnow did: not moved
            function = session.get(Function, fn)
            row = session.get(ModelVersion, tuned.id)
            assert function is not None and row is not None
            function.deployed_version, row.status = tuned.version, "deployed"
            session.add_all([function, row])

    with TestClient(create_app(settings), headers=AUTH) as http:
        rt = http.app.state.runtime  # type: ignore[attr-defined]
        function, _, vectors, in_space = stored(rt, fn)
        assert function.vector_space == tuned.version
        np.testing.assert_allclose(vectors, in_space, atol=1e-4)
        assert _invoke(http, fn, _digits(1, offset=30)[0][0])["modelVersion"] == tuned.version


def test_a_move_that_cannot_read_an_image_changes_nothing(settings: Settings) -> None:
    with TestClient(create_app(settings), headers=AUTH) as http:
        rt = http.app.state.runtime  # type: ignore[attr-defined]
        fn = trained_function(http)
        tuned = tuned_version(rt, fn, deploy=False)
        _function, ids, before, _ = stored(rt, fn)
        with session_scope(rt.engine) as session:
            lost = session.exec(select(Sample.blob).where(Sample.id == ids[-1])).one()
        data = rt.blobs.get(lost)
        rt.blobs.delete(lost)

        refused = http.post(f"/v1/functions/{fn}/models/{tuned.version}/deploy")

        assert refused.status_code == 409 and "missing" in refused.json()["message"]
        rt.blobs.put(data)
        function, _, after, _ = stored(rt, fn)
        assert function.vector_space is None and function.deployed_version == 1
        np.testing.assert_array_equal(after, before)


def test_a_capture_embedded_before_the_vectors_moved_is_not_stored(settings: Settings) -> None:
    with TestClient(create_app(settings), headers=AUTH) as http:
        rt = http.app.state.runtime  # type: ignore[attr-defined]
        fn = trained_function(http)
        ids = [s["id"] for s in http.get(f"/v1/functions/{fn}/samples").json()["data"]]
        rules = [{"name": "all", "examples": ids, "similarity": 0.01}]  # every input matches
        assert (
            http.put(f"/v1/functions/{fn}/capture-policy", json={"rules": rules}).status_code == 200
        )
        first, second, third = (data for data, _ in _digits(2, offset=20)[:3])
        assert _invoke(http, fn, first)["capture"]["reason"] == "rule:all"
        with session_scope(rt.engine) as session:  # as a move committed after the snapshot read
            session.get(Function, fn).vector_space = 7  # type: ignore[union-attr]

        stale = _invoke(http, fn, second)

        assert stale["capture"]["captured"] is False
        with session_scope(rt.engine) as session:
            session.get(Function, fn).vector_space = None  # type: ignore[union-attr]
        assert _invoke(http, fn, third)["capture"]["reason"] == "rule:all"
        queued = http.get(f"/v1/functions/{fn}/review", params={"status": "pending"}).json()
        assert queued["count"] == 2


@pytest.mark.databases
def test_deleting_a_suspect_sample_waits_for_a_move_before_locking_its_items(
    settings: Settings,
) -> None:
    """Deleting a sample removes its open suspect items; were they locked before the function's
    row, a move holding that row and rewriting the items would deadlock with it."""
    if not settings.database_url:
        pytest.skip("row locks that can be probed (NOWAIT) are PostgreSQL's")
    with TestClient(create_app(settings), headers=AUTH) as http:
        rt = http.app.state.runtime  # type: ignore[attr-defined]
        fn = trained_function(http)
        with session_scope(rt.engine) as session:
            sample = session.exec(select(Sample).where(Sample.function_id == fn)).first()
            assert sample is not None
            item = ReviewItem(
                function_id=fn,
                kind="suspect",
                sample_id=sample.id,
                blob=sample.blob,
                embedding=sample.embedding,
                reason="suspect",
                score=0.0,
            )
            session.add(item)
        moving, release = threading.Event(), threading.Event()

        def move() -> None:  # a move's last transaction, as far as locks go
            with session_scope(rt.engine) as session:
                lock_space(session, fn, exclusive=True)
                moving.set()
                release.wait(10)

        mover = threading.Thread(target=move)
        mover.start()
        moving.wait(10)
        change = LabelChange(actors=("admin",), via="sample_api")
        deleter = threading.Thread(
            target=sample_service.delete_sample, args=(rt, fn, sample.id, change)
        )
        deleter.start()
        time.sleep(0.5)  # the delete is under way meanwhile
        try:
            with rt.engine.connect() as probe:  # the item is not locked: the delete waits first
                probe.execute(
                    text("SELECT id FROM reviewitem WHERE id = :id FOR UPDATE NOWAIT"),
                    {"id": item.id},
                ).all()
        finally:
            release.set()
            mover.join(10)
            deleter.join(10)
        with session_scope(rt.engine) as session:
            assert session.get(ReviewItem, item.id) is None
            assert session.get(Sample, sample.id) is None

"""Fine-tuned challengers over HTTP with the offline backbone (EfficientNet-Lite0): labels in, a
tuned version trained and judged by itself, served, rolled back, loaded by a replica started
afterwards, retrained by tuning again; cancelled and refused cleanly."""

from __future__ import annotations

import io
import logging
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sklearn.datasets import load_digits
from sqlmodel import select

from api.app import create_app
from learner import TrainingCancelled
from service import samples
from service.finetune import finetune_function
from service.runtime import Runtime
from service.serving import state_nbytes
from service.settings import Settings
from store import Function, ReviewItem, Sample, session_scope, vector_from_bytes
from tests.api.test_model_export import exported_answers, served_answers
from tests.conftest import data_uri

AUTH = {"Authorization": "Bearer k"}


def _digit_png(pixels: np.ndarray) -> bytes:
    image = Image.fromarray((255 - pixels * 16).clip(0, 255).astype(np.uint8)).resize((64, 64))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _digits(per_label: int, offset: int = 0) -> list[tuple[bytes, str]]:
    digits = load_digits()
    chosen = []
    for digit in (0, 1):
        rows = np.flatnonzero(digits.target == digit)[offset : offset + per_label]
        chosen += [(_digit_png(digits.images[i]), str(digit)) for i in rows]
    return chosen


def _upload(http: TestClient, function_id: str, samples: list[tuple[bytes, str]]) -> None:
    for data, label in samples:
        body = {"data": data_uri(data), "annotation": {"labelName": label}}
        response = http.post(f"/v1/functions/{function_id}/samples", json=body)
        assert response.status_code == 201, response.text


def _invoke(http: TestClient, function_id: str, data: bytes, **params: object) -> dict:
    response = http.post(
        f"/v1/functions/{function_id}/invoke", json={"data": data_uri(data)}, params=params
    )
    assert response.status_code == 200, response.text
    return response.json()


def tune_digits(http: TestClient) -> tuple[str, dict]:
    """A function with 12 labelled images of each of two digits, trained (version 1), then
    fine-tuned: its id and the tuned version's record (version 2, ``head: finetuned``)."""
    fn = http.post("/v1/functions", json={"name": "digits"}).json()["id"]
    _upload(http, fn, _digits(12))
    assert http.post(f"/v1/functions/{fn}/train").json()["version"] == 1
    tuned = http.post(f"/v1/functions/{fn}/finetune")
    assert tuned.status_code == 200, tuned.text
    record = tuned.json()
    assert record["version"] == 2 and record["head"] == "finetuned"
    return fn, record


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        backbone="efficientnet-lite0",
        retrain_interval=0,
        admin_key="k",
        seed="0",
        precision="fp32",  # a vector embedded alone or in a batch is the same to 1e-4
        finetune_blocks=3,  # a shallow cut keeps the tests quick; the default is B13's depth
    )


def test_a_tuned_version_is_judged_served_rolled_back_and_loaded_by_a_new_replica(
    settings: Settings,
) -> None:
    probe = _digits(1, offset=30)[1][0]  # a "1" no version saw
    with TestClient(create_app(settings), headers=AUTH) as http:
        fn, record = tune_digits(http)

        assert record["status"] in ("deployed", "rejected")
        decision = record["decision"]
        assert decision["basis"] == "holdout" and decision["comparisons"][0]["n"] == 5
        assert record["params"]["tuned_blocks"] == 3 and record["sampleCount"] == 24
        assert (
            record["metrics"]["tuning"]["train_images"] + record["metrics"]["tuning"]["val_images"]
            == 19
        )
        status = http.get(f"/v1/functions/{fn}/training").json()
        assert status["kind"] == "finetune" and status["state"] == "idle"
        assert status["lastVersion"] == 2
        frozen_answer = _invoke(http, fn, probe, capture=False, version=1)

        # by itself, 5 holdout images cannot show a significant win: the operator deploys it
        if record["status"] == "rejected":
            assert "does not win" in decision["reason"]
            assert http.post(f"/v1/functions/{fn}/models/2/deploy").status_code == 200
        served = _invoke(http, fn, probe)

        assert served["modelVersion"] == 2 and served["labelName"] in ("0", "1")
        assert served["capture"] is not None
        rt = http.app.state.runtime  # type: ignore[attr-defined]
        # the function's stored vectors moved to the tuned tower's features with it (the same
        # as the backbone's when early stopping kept the untuned tail)
        tail_tuned = record["metrics"]["tuning"]["best_epoch"] > 0
        assert _space(rt, fn) == 2 and _backbone_vectors_stored(rt, fn) != tail_tuned
        assert state_nbytes(rt, fn) > record["metrics"]["tunedBytes"] > 7_000_000
        tuned_confidence = served["confidence"]
        assert tuned_confidence != pytest.approx(frozen_answer["confidence"], abs=1e-6)
        # the export runs the tuned tower and answers as the service does
        exported = http.get(f"/v1/functions/{fn}/model.onnx", params={"version": 2})
        assert exported.status_code == 200, exported.text
        images = [data for data, _ in _digits(2, offset=40)]
        labels, probabilities, meta = exported_answers(exported.content, images)
        assert meta["winnow.model_version"] == "2"
        for row, answer in zip(probabilities, served_answers(http, fn, images), strict=True):
            assert dict(zip(labels, row.tolist(), strict=True)) == pytest.approx(answer, abs=1e-3)
        frozen_file = http.get(f"/v1/functions/{fn}/model.onnx", params={"version": 1}).content
        assert not np.allclose(exported_answers(frozen_file, images)[1], probabilities, atol=1e-4)

    # a replica started afterwards loads the tuned tower from the artifact
    with TestClient(create_app(settings), headers=AUTH) as http:
        again = _invoke(http, fn, probe, capture=False)
        assert again["modelVersion"] == 2
        assert again["confidence"] == pytest.approx(tuned_confidence, abs=1e-4)

        rt = http.app.state.runtime  # type: ignore[attr-defined]
        assert _space(rt, fn) == 2 and _backbone_vectors_stored(rt, fn) != tail_tuned
        assert http.post(f"/v1/functions/{fn}/models/1/deploy").status_code == 200
        rolled_back = _invoke(http, fn, probe, capture=False)
        assert rolled_back["modelVersion"] == 1
        assert rolled_back["confidence"] == pytest.approx(frozen_answer["confidence"], abs=1e-6)
        assert _space(rt, fn) is None and _backbone_vectors_stored(rt, fn)

        assert http.post(f"/v1/functions/{fn}/models/2/deploy?pin=false").status_code == 200
        _upload(http, fn, _digits(1, offset=12))
        assert _space(rt, fn) == 2 and _backbone_vectors_stored(rt, fn) != tail_tuned

        # in the tuned space a retrain fits a head on the tuned features, served with the tail
        _upload(http, fn, _digits(2, offset=13))
        retrained = http.post(f"/v1/functions/{fn}/train").json()
        assert retrained["version"] == 3 and retrained["head"] != "finetuned"
        assert retrained["sampleCount"] == 30
        if retrained["status"] == "deployed":
            assert _invoke(http, fn, probe, capture=False)["modelVersion"] == 3
            assert _space(rt, fn) == 2
        exported = http.get(f"/v1/functions/{fn}/model.onnx", params={"version": 3})
        assert exported.status_code == 200, exported.text
        labels, probabilities, _meta = exported_answers(exported.content, images)
        with_v3 = [
            {
                c["labelName"]: c["confidence"]
                for c in _invoke(http, fn, image, capture=False, version=3)["labelConfidences"]
            }
            for image in images
        ]
        for row, answer in zip(probabilities, with_v3, strict=True):
            assert dict(zip(labels, row.tolist(), strict=True)) == pytest.approx(answer, abs=1e-3)


def _space(rt: Runtime, function_id: str) -> int | None:
    with session_scope(rt.engine) as session:
        function = session.get(Function, function_id)
        assert function is not None
        return function.vector_space


def _backbone_vectors_stored(rt: Runtime, function_id: str) -> bool:
    """Whether the function's stored vectors are the backbone's, having checked that each is its
    image embedded in the function's space (the deployed tuned tower's features in a tuned one)."""
    with session_scope(rt.engine) as session:
        function = session.get(Function, function_id)
        rows = list(
            session.exec(
                select(Sample.blob, Sample.embedding).where(Sample.function_id == function_id)
            ).all()
        )
        rows += session.exec(
            select(ReviewItem.blob, ReviewItem.embedding).where(
                ReviewItem.function_id == function_id
            )
        ).all()
    assert function is not None and rows
    images = [rt.blobs.get(blob) for blob, _ in rows]
    stored = np.stack([vector_from_bytes(e) for _, e in rows])
    in_space = np.stack(samples.embed_images(rt, function, images))  # type: ignore[arg-type]
    backbone = np.stack(samples.embed_images_with(rt, function, images, None))  # type: ignore[arg-type]
    assert np.abs(stored - in_space).max() < 1e-4, np.abs(stored - in_space).max(axis=1)
    return bool(np.allclose(stored, backbone, atol=1e-4))


def test_a_winning_challenger_deploys_refitted_on_every_label(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five holdout images cannot show a significant win, so the guard is made to see one: what
    follows a win is under test. The run refits the recipe on all 24 labelled samples for the
    epochs early stopping kept, in its own phase; a cancel there records nothing."""
    from dataclasses import replace

    from service import finetune

    def winning(comparison):  # type: ignore[no-untyped-def]
        return replace(decide_wins(comparison), deploy=True, reason="made to win")

    decide_wins = finetune.decide_wins
    monkeypatch.setattr(finetune, "decide_wins", winning)
    with TestClient(create_app(settings), headers=AUTH) as http:
        rt = http.app.state.runtime  # type: ignore[attr-defined]
        phases: list[str] = []
        phase = rt.training.phase

        def recorded(function_id: str, name: str, done: float = 0.0) -> None:
            phase(function_id, name, done)
            phases.append(name)

        rt.training.phase = recorded
        fn, record = tune_digits(http)

        assert record["status"] == "deployed" and record["decision"]["reason"] == "made to win"
        tuning, refit = record["metrics"]["tuning"], record["metrics"]["refit"]
        assert tuning["train_images"] + tuning["val_images"] == 19  # judged: 5 held out
        assert refit["train_images"] == 24 and refit["epochs"] == tuning["best_epoch"]
        assert record["trainSeconds"] >= tuning["seconds"] + refit["seconds"] - 1e-6
        assert "refitting" in phases and phases.index("refitting") > phases.index("comparing")
        served = _invoke(http, fn, _digits(1, offset=30)[1][0])
        assert served["modelVersion"] == 2

        def cancel_while_refitting(function_id: str, name: str, done: float = 0.0) -> None:
            phase(function_id, name, done)
            if name == "refitting":
                rt.training.cancel(function_id)

        _upload(http, fn, _digits(2, offset=12))
        rt.training.phase = cancel_while_refitting
        with pytest.raises(TrainingCancelled):
            finetune_function(rt, fn)
        rt.training.phase = phase
        assert http.get(f"/v1/functions/{fn}/models").json()["count"] == 2
        assert _invoke(http, fn, _digits(1, offset=30)[1][0])["modelVersion"] == 2


def test_fine_tuning_is_refused_where_it_cannot_run(settings: Settings, tmp_path) -> None:
    with TestClient(create_app(settings), headers=AUTH) as http:
        fn = http.post("/v1/functions", json={"name": "few"}).json()["id"]
        _upload(http, fn, _digits(3))
        few = http.post(f"/v1/functions/{fn}/finetune")
        assert few.status_code == 409 and "5 or more" in few.json()["message"], few.text
        idle = http.post(f"/v1/functions/{fn}/training/cancel")
        assert idle.status_code == 409, idle.text
        assert http.get(f"/v1/functions/{fn}/models").json()["count"] == 0

    clip = Settings(data_dir=tmp_path / "clip", backbone="tiny-clip", admin_key="k")
    with TestClient(create_app(clip), headers=AUTH) as http:
        fn = http.post("/v1/functions", json={"name": "vit"}).json()["id"]
        refused = http.post(f"/v1/functions/{fn}/finetune")
        assert refused.status_code == 409 and "efficientnet-lite0" in refused.json()["message"]


def test_a_cancelled_fine_tune_records_nothing(settings: Settings) -> None:
    with TestClient(create_app(settings), headers=AUTH) as http:
        fn = http.post("/v1/functions", json={"name": "digits"}).json()["id"]
        _upload(http, fn, _digits(8))
        assert http.post(f"/v1/functions/{fn}/train").json()["version"] == 1
        rt = http.app.state.runtime  # type: ignore[attr-defined]
        loading = threading.Event()
        phase = rt.training.phase

        def cancel_while_loading(function_id: str, name: str, done: float = 0.0) -> None:
            phase(function_id, name, done)
            if name == "loading" and not loading.is_set():  # the run is reading images
                loading.set()
                assert http.post(f"/v1/functions/{fn}/training/cancel").status_code == 200

        rt.training.phase = cancel_while_loading
        with pytest.raises(TrainingCancelled):
            finetune_function(rt, fn)
        rt.training.phase = phase

        assert loading.is_set()
        status = http.get(f"/v1/functions/{fn}/training").json()
        assert status["state"] == "cancelled" and status["deployedVersion"] == 1
        assert http.get(f"/v1/functions/{fn}/models").json()["count"] == 1
        assert _invoke(http, fn, _digits(1)[0][0], capture=False)["modelVersion"] == 1


def test_the_scheduler_tunes_when_each_label_has_enough_samples(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from dataclasses import replace

    from service import training
    from service.finetune import finetune_due
    from store import Function, ModelVersion, session_scope

    with TestClient(create_app(settings), headers=AUTH) as http:
        fn = http.post("/v1/functions", json={"name": "digits"}).json()["id"]
        _upload(http, fn, _digits(6))
        rt = http.app.state.runtime  # type: ignore[attr-defined]

        def function() -> Function:
            with session_scope(rt.engine) as session:
                row = session.get(Function, fn)
                assert row is not None
                return row

        rt.settings = replace(rt.settings, finetune="auto", finetune_min_per_label=6)
        assert not finetune_due(rt, function())  # no frozen head serves yet
        assert http.post(f"/v1/functions/{fn}/train").json()["version"] == 1
        assert finetune_due(rt, function())
        cost = rt.finetune_costs["efficientnet-lite0"]  # measured at the first ask
        assert 0 < cost < 10
        rt.settings = replace(rt.settings, finetune_min_per_label=7)
        assert not finetune_due(rt, function())  # 6 of each label, 7 asked
        # 12 labelled samples: about 12 x 0.8 x 0.85 x 3 (views) x 10 (epochs) x cost seconds,
        # and a refit on all 12 for half the epochs: 12 x 3 x 5 x cost
        estimate = (244.8 + 180) * cost / 60
        rt.settings = replace(
            rt.settings, finetune_min_per_label=6, finetune_max_minutes=estimate * 0.99
        )
        with caplog.at_level(logging.INFO, logger="winnow.training"):
            assert not finetune_due(rt, function())  # the hardware makes it too slow
            assert not finetune_due(rt, function())  # said once
        assert caplog.text.count("over --finetune-max-minutes") == 1
        rt.settings = replace(rt.settings, finetune_max_minutes=estimate * 1.01)
        assert finetune_due(rt, function())
        rt.settings = replace(rt.settings, finetune_max_minutes=0)  # no limit

        tuned: list[tuple[str, str]] = []
        monkeypatch.setattr(
            training, "finetune_function", lambda rt, f, trigger, wait: tuned.append((f, trigger))
        )
        training.retrain_check(rt)
        assert tuned == [(fn, "schedule")]

        _upload(http, fn, _digits(3, offset=6))  # 6 annotations after v1's 12
        with session_scope(rt.engine) as session:  # a tuned attempt at today's annotations
            session.add(
                ModelVersion(
                    function_id=fn,
                    version=2,
                    status="rejected",
                    backbone="efficientnet-lite0",
                    head="finetuned",
                    annotation_counter=function().annotation_counter,
                )
            )
        assert training.new_annotations(rt, function()) == 6  # the frozen head has not seen them
        assert not finetune_due(rt, function())  # not again until annotations grow by half
        _upload(http, fn, _digits(5, offset=9))  # 28 >= 1.5 x 18
        assert finetune_due(rt, function())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"finetune": "sometimes"}, "finetune must be off or auto"),
        ({"finetune_blocks": 17}, "finetune_blocks must be between 1 and 16"),
        ({"finetune_blocks": 0}, "finetune_blocks must be between 1 and 16"),
        ({"finetune_max_minutes": -1.0}, "finetune_max_minutes must be >= 0"),
    ],
)
def test_fine_tune_settings_are_checked_at_start(
    settings: Settings, change: dict[str, object], message: str
) -> None:
    from dataclasses import replace

    from service.runtime import Runtime

    with pytest.raises(ValueError, match=message):
        Runtime(replace(settings, **change))  # type: ignore[arg-type]

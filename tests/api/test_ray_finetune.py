"""Fine-tuned challengers with ``--encoder ray`` against a local Ray instance started here: the job
runs on a Ray worker, never in the API process; a tuned version is served through the Ray encoder
(the trunk on a replica, the tail in the API process) and answers as an in-process replica does;
a cancelled job stops its worker. Skipped without the ``ray`` extra."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.app import create_app
from embeddings import EncoderPool
from embeddings.tuning import split_tower
from learner import TrainingCancelled
from learner.finetune import TuneConfig, TunedModel
from learner.tune_job import TuneJob
from service import finetune
from service.settings import Settings
from tests.api.test_finetune import _digits, _invoke, tune_digits

ray = pytest.importorskip(
    "ray", reason="fine-tuning on Ray needs ray[serve] (pip install '.[ray]')"
)
serve = pytest.importorskip("ray.serve", reason="fine-tuning on Ray needs ray[serve]")

from embeddings.ray_deployer import NAMESPACE  # noqa: E402 - imports Ray
from embeddings.ray_pool import RayEncoderPool  # noqa: E402
from learner.ray_tuning import tune_on_ray  # noqa: E402

SPEC = "efficientnet-lite0"
AUTH = {"Authorization": "Bearer k"}


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray instance for this module: 3 logical CPUs, one for the encoder replica, one
    for a fine-tune worker, one spare (the host's 2 cores share them)."""
    ray.init(num_cpus=3, include_dashboard=False, namespace=NAMESPACE, log_to_driver=False)
    serve.start(proxy_location="Disabled")
    try:
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


def _settings(data_dir: Path, encoder: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        backbone=SPEC,
        retrain_interval=0,
        admin_key="k",
        seed="0",
        precision="fp32",
        encoder=encoder,
        finetune_blocks=3,  # a shallow cut keeps the tests quick
    )


def test_a_tuned_encoding_on_ray_equals_the_in_process_one(local_ray: None) -> None:
    tower = split_tower(SPEC, 3)
    tail = TunedModel(tower.tail, ["0", "1"], 1280, 3).eval()
    images = [Image.open(io.BytesIO(data)).convert("RGB") for data, _ in _digits(3)]
    with RayEncoderPool(SPEC) as remote, EncoderPool(SPEC, device="cpu") as local:
        on_ray = remote.get(SPEC).encode_tuned(images, tail)
        here = local.get(SPEC).encode_tuned(images, tail)
    assert on_ray.shape == here.shape == (6, 1280)
    np.testing.assert_allclose(on_ray, here, atol=1e-4)


def test_a_function_is_tuned_on_a_ray_worker_and_served_through_the_ray_encoder(
    local_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_here(*args: object, **kwargs: object) -> None:
        raise AssertionError("the fine-tune job ran in the API process")

    monkeypatch.setattr(finetune, "run_tune_job", not_here)  # the worker imports its own
    probe = _digits(1, offset=30)[1][0]
    with TestClient(create_app(_settings(tmp_path, "ray")), headers=AUTH) as http:
        fn, record = tune_digits(http)

        assert record["metrics"]["tuning"]["train_images"] > 0
        status = http.get(f"/v1/functions/{fn}/training").json()
        assert status["kind"] == "finetune" and status["state"] == "idle"
        if record["status"] == "rejected":  # 5 holdout images rarely show a significant win
            assert http.post(f"/v1/functions/{fn}/models/2/deploy").status_code == 200
        on_ray = _invoke(http, fn, probe, capture=False)
        assert on_ray["modelVersion"] == 2
        assert http.get(f"/v1/functions/{fn}").json()["vectorSpace"] == 2

    # a replica with the in-process encoder answers the same on the same store
    with TestClient(create_app(_settings(tmp_path, "local")), headers=AUTH) as http:
        here = _invoke(http, fn, probe, capture=False)
    assert here["modelVersion"] == 2 and here["labelName"] == on_ray["labelName"]
    assert here["confidence"] == pytest.approx(on_ray["confidence"], abs=1e-4)

    # rolled back on Ray: the stored vectors move back to the backbone's
    with TestClient(create_app(_settings(tmp_path, "ray")), headers=AUTH) as http:
        assert http.post(f"/v1/functions/{fn}/models/1/deploy").status_code == 200
        assert _invoke(http, fn, probe, capture=False)["modelVersion"] == 1
        assert http.get(f"/v1/functions/{fn}").json()["vectorSpace"] is None


class _Cancelling:
    """Asks the job to stop from the first poll on, and records the phases it reported."""

    def __init__(self) -> None:
        self.phases: list[str] = []

    def cancelled(self) -> bool:
        return True

    def phase(self, phase: str, done: float) -> None:
        self.phases.append(phase)


def test_a_cancelled_job_stops_on_its_worker(local_ray: None) -> None:
    samples = _digits(40)  # 80 images: the worker is still loading when the cancel arrives
    labels = np.asarray([label for _, label in samples], dtype=object)
    job = TuneJob(
        spec=SPEC,
        sample_ids=[f"s{i}" for i in range(len(samples))],
        labels=labels,
        fit=np.arange(0, 80, 2),
        holdout=np.arange(1, 80, 2),
        config=TuneConfig(seed=0),
        max_pixels=10_000_000,
    )
    control = _Cancelling()
    with pytest.raises(TrainingCancelled):
        tune_on_ray(job, [data for data, _ in samples], control, poll_s=0.05)
    assert control.phases and set(control.phases) <= {"loading"}

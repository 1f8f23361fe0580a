"""The Ray Serve encoder (``--encoder ray``) against a local Ray instance started here.

One encoder deployment of the tiny backbone serves two API apps (two replicas, each with its own
data dir), gives the in-process encoder's vectors, batches calls from both apps into one forward
pass, and a full queue answers 503 with Retry-After. Skipped without the ``ray`` extra.
"""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.app import create_app
from embeddings import EncoderPool
from service.settings import Settings
from tests.conftest import ADMIN_KEY, AUTH, BLUE, RED, add_colour_samples, data_uri, png_bytes

ray = pytest.importorskip("ray", reason="the Ray encoder needs ray[serve] (pip install '.[ray]')")
serve = pytest.importorskip("ray.serve", reason="the Ray encoder needs ray[serve]")

from embeddings.ray_deployer import NAMESPACE  # noqa: E402 - imports Ray
from embeddings.ray_pool import RayEncoderPool  # noqa: E402
from embeddings.ray_replica import APP_PREFIX, EncoderReplica, app_name  # noqa: E402

SPEC = "tiny-clip"
# Every app and pool here asks for the same deployment settings (the first deploy fixes them);
# a 50 ms batch window lets calls from the two apps meet in one batch.
BATCH, WAIT_MS, QUEUE = 8, 50.0, 64


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray instance for this module (2 CPUs: one encoder replica and the API side)."""
    ray.init(num_cpus=2, include_dashboard=False, namespace=NAMESPACE, log_to_driver=False)
    serve.start(proxy_location="Disabled")  # handles only, as the pool starts it
    try:
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


def ray_settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        backbone=SPEC,
        retrain_interval=0,
        seed="0",
        admin_key=ADMIN_KEY,
        encoder="ray",
        batch_size=BATCH,
        batch_wait_ms=WAIT_MS,
        queue_limit=QUEUE,
    )


def _images() -> list[Image.Image]:
    sizes = [(32, RED), (57, BLUE), (200, RED), (31, (120, 200, 40))]
    return [
        Image.open(io.BytesIO(png_bytes(colour, size=size, seed=i))).convert("RGB")
        for i, (size, colour) in enumerate(sizes)
    ]


def _replica_stats() -> dict[str, int]:
    return serve.get_app_handle(app_name(SPEC)).stats.remote().result()  # type: ignore[no-any-return]


def test_vectors_equal_the_in_process_encoders(local_ray: None) -> None:
    images = _images()
    with (
        RayEncoderPool(SPEC, max_batch=BATCH, max_wait_ms=WAIT_MS, max_queue=QUEUE) as remote,
        EncoderPool(SPEC, device="cpu") as local,
    ):
        assert remote.default_spec == SPEC and remote.resolve(None) == SPEC
        remote_vectors = remote.get(SPEC).encode(images)
        local_vectors = local.get(SPEC).encode(images)
        # text too (zero-shot heads): a replica embeds it, as the in-process encoder does
        prompts = ["a photo of a cat", "itap of a dog."]
        assert remote.get(SPEC).has_text_tower
        remote_text, local_text = (
            remote.get(SPEC).encode_text(prompts),
            local.get(SPEC).encode_text(prompts),
        )
        assert remote_text.shape == local_text.shape and remote_text.dtype == np.float32
        assert (remote_text * local_text).sum(axis=1).min() >= 0.9999
        assert remote.loaded() == [SPEC]
        assert remote.get(SPEC).encode([]).shape == (0, local_vectors.shape[1])
        with pytest.raises(ValueError, match="unknown backbone spec"):
            remote.get("no-such-backbone")
    assert remote_vectors.dtype == np.float32 and remote_vectors.shape == local_vectors.shape
    np.testing.assert_allclose(np.linalg.norm(remote_vectors, axis=1), 1.0, atol=1e-5)
    cosine = (remote_vectors * local_vectors).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine


def test_two_api_replicas_share_one_encoder_deployment(local_ray: None, tmp_path: Path) -> None:
    with (
        TestClient(create_app(ray_settings(tmp_path / "one")), headers=AUTH) as one,
        TestClient(create_app(ray_settings(tmp_path / "two")), headers=AUTH) as two,
    ):
        before = _replica_stats()
        functions = {}
        for client in (one, two):
            fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
            add_colour_samples(client, fid, per_label=4)  # 8 images embedded
            assert client.post(f"/v1/functions/{fid}/train").status_code == 200
            functions[client] = fid
        for client, fid in functions.items():
            for colour, name in ((RED, "red"), (BLUE, "blue")):
                body = {"data": data_uri(png_bytes(colour, seed=500))}
                answer = client.post(f"/v1/functions/{fid}/invoke?capture=false", json=body)
                assert answer.status_code == 200, answer.text
                assert answer.json()["labelName"] == name

        # one deployment served both apps: it embedded every image either of them sent
        winnow_apps = [name for name in serve.status().applications if name.startswith(APP_PREFIX)]
        assert winnow_apps == [app_name(SPEC)]
        assert _replica_stats()["images"] - before["images"] == 2 * (8 + 2)
        assert one.get("/health").json()["backbonesLoaded"] == [SPEC]

        # and batches across them: one invoke from each at once meets in one forward pass
        deadline = time.monotonic() + 30
        while True:
            before = _replica_stats()
            _invoke_together([(one, functions[one]), (two, functions[two])], seed=time.time_ns())
            after = _replica_stats()
            assert after["images"] - before["images"] == 2
            if after["batches"] - before["batches"] == 1:
                break
            assert time.monotonic() < deadline, "calls from the two apps never shared a batch"


def test_a_full_queue_answers_503_with_retry_after(local_ray: None, tmp_path: Path) -> None:
    # Deployed here as an operator would: one slow replica (0.2 s a batch, one call at a time)
    # and one queued call per API replica; the app finds it by name and uses it as it is.
    name = app_name(SPEC)
    serve.delete(name)
    slow = EncoderReplica.options(  # type: ignore[attr-defined]
        max_ongoing_requests=1,
        max_queued_requests=1,
        num_replicas=1,
        ray_actor_options={"num_cpus": 1},
        user_config={"max_batch_size": 1, "batch_wait_timeout_s": 0.0},
    ).bind(SPEC, min_batch_seconds=0.2)
    serve.run(slow, name=name, route_prefix=None)
    try:
        with TestClient(create_app(ray_settings(tmp_path / "data")), headers=AUTH) as client:
            fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
            add_colour_samples(client, fid, per_label=2)
            assert client.post(f"/v1/functions/{fid}/train").status_code == 200
            results = _invoke_together([(client, fid)] * 8, seed=1000)
            statuses = Counter(status for status, _ in results)
            assert set(statuses) <= {200, 503}, statuses
            assert statuses[200] >= 1 and statuses[503] >= 1, statuses
            assert all(int(retry) >= 1 for status, retry in results if status == 503)
            # the service recovers as soon as the queue drains
            body = {"data": data_uri(png_bytes(RED, seed=1))}
            assert client.post(f"/v1/functions/{fid}/invoke", json=body).status_code == 200
    finally:
        serve.delete(name)


def _invoke_together(
    targets: list[tuple[TestClient, str]], seed: int
) -> list[tuple[int, str | None]]:
    """Invoke each (client, function) once, all released at the same moment; (status,
    Retry-After) per invoke."""
    results: list[tuple[int, str | None]] = []
    lock = threading.Lock()
    start = threading.Barrier(len(targets))

    def invoke(client: TestClient, fid: str, index: int) -> None:
        body = {"data": data_uri(png_bytes(RED, seed=(seed + index) % 2**32))}
        start.wait()
        response = client.post(f"/v1/functions/{fid}/invoke?capture=false", json=body)
        with lock:
            results.append((response.status_code, response.headers.get("retry-after")))

    threads = [
        threading.Thread(target=invoke, args=(client, fid, index))
        for index, (client, fid) in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == len(targets)
    return results

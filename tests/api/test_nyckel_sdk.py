"""Nyckel's own Python SDK (``nyckel`` from PyPI, 0.4.x) against a live winnow, unchanged.

The cats-vs-dogs walkthrough's calls, on Fashion-MNIST images written to files: the only change
from code written for the hosted service is ``server_url``. Calls covered: ``Credentials`` (token
exchange, and a wrong secret refused), ``ImageClassificationFunction.create``, ``create_samples``
from (path, label) pairs (and again: the same ids back), training by itself (winnow's scheduler,
asked by the adapter), ``has_trained_model``, ``invoke`` on held-out images (accuracy asserted)
and with ``model_id``, ``list_samples``, ``list_labels``, ``read_sample``, ``update_annotation``
(relabel and unlabel), ``delete_samples``, ``sample_count``/``label_count`` (v0.9 metrics),
loading a function by id, ``delete``.

The SDK finds the base of its paging links by splitting the URL at ``:5000`` (or ``.com``), so
the service listens on port 5000, as a local Nyckel-compatible server must.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.settings import Settings
from tests.api.live import threaded_server, wait_until
from tests.conftest import ADMIN_KEY, AUTH
from tests.fashion import CLASSES, fashion_test_split, png

nyckel = pytest.importorskip("nyckel", reason="the nyckel SDK is in the dev extra")

pytestmark = pytest.mark.slow

PORT = 5000
PER_CLASS = 8  # labelled samples per class
HELD_OUT = 100  # invoked images, never uploaded


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def write_images(directory: Path, images: np.ndarray, indices: list[int]) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in indices:
        path = directory / f"{i}.png"
        path.write_bytes(png(images[i]))
        paths.append(str(path))
    return paths


def test_nyckel_sdk_walkthrough_runs_against_winnow(tmp_path) -> None:
    images, labels = fashion_test_split()
    if not port_free(PORT):
        pytest.skip(f"port {PORT} is taken: the nyckel SDK pages only through ':{PORT}' URLs")
    order = np.random.default_rng(0).permutation(len(labels))
    train = [int(i) for c in range(10) for i in order[labels[order] == c][:PER_CLASS]]
    held_out = [int(i) for i in order if int(i) not in set(train)][:HELD_OUT]
    train_paths = write_images(tmp_path / "train", images, train)
    held_out_paths = write_images(tmp_path / "held_out", images, held_out)
    pairs = [(p, CLASSES[labels[i]]) for p, i in zip(train_paths, train, strict=True)]

    settings = Settings(
        data_dir=tmp_path / "data",
        backbone="efficientnet-lite0",
        retrain_interval=1,
        seed="0",
        admin_key=ADMIN_KEY,
    )
    with threaded_server(settings, port=PORT) as url:
        # An API key of winnow's is the Nyckel client: its id and its text.
        key = httpx.post(
            f"{url}/v1/keys", headers=AUTH, json={"scopes": ["invoke", "annotate", "admin"]}
        ).json()
        credentials = nyckel.Credentials(key["id"], key["key"], server_url=f"{url}/nyckel")
        with pytest.raises(ValueError, match="401"):
            _ = nyckel.Credentials(key["id"], "wn_x_wrong", server_url=f"{url}/nyckel").token

        func = nyckel.ImageClassificationFunction.create("FashionMNIST", credentials)
        ids = func.create_samples(pairs)
        assert len(ids) == len(pairs) and len(set(ids)) == len(pairs)
        assert func.create_samples(pairs[:5]) == ids[:5]  # a rerun adds nothing
        assert func.sample_count == len(pairs) and func.label_count == 10

        # Nyckel trains by itself after samples arrive; so does this path.
        wait_until(func.has_trained_model, timeout=120, interval=0.5, what="a trained model")
        predictions = func.invoke(held_out_paths)
        assert all(isinstance(p, nyckel.ClassificationPrediction) for p in predictions)
        truth = [CLASSES[labels[i]] for i in held_out]
        accuracy = np.mean([p.label_name == t for p, t in zip(predictions, truth, strict=True)])
        print(f"nyckel SDK: accuracy {accuracy:.2f} on {HELD_OUT} held-out images")
        assert accuracy >= 0.6  # EfficientNet-Lite0 features, 8 labels per class
        version_one = func.invoke(held_out_paths[:3], model_id="1")
        assert all(isinstance(p, nyckel.ClassificationPrediction) for p in version_one)

        assert sorted(label.name for label in func.list_labels()) == sorted(CLASSES)
        listed = {s.id: s for s in func.list_samples()}
        assert set(listed) == set(ids)
        given = dict(zip(ids, (name for _, name in pairs), strict=True))
        assert all(listed[i].annotation.label_name == given[i] for i in ids)
        assert all(s.prediction is not None for s in listed.values())

        sample = func.read_sample(ids[0])
        assert sample.annotation.label_name == given[ids[0]]
        other = next(name for name in CLASSES if name != given[ids[0]])
        sample.annotation = nyckel.ClassificationAnnotation(label_name=other)
        func.update_annotation(sample)
        assert func.read_sample(ids[0]).annotation.label_name == other
        sample.annotation = None
        func.update_annotation(sample)
        assert func.read_sample(ids[0]).annotation is None

        func.delete_samples(ids[:4])
        assert {s.id for s in func.list_samples()} == set(ids[4:])
        assert func.sample_count == len(pairs) - 4
        wait_until(func.has_trained_model, timeout=120, interval=0.5, what="the retrained model")

        again = nyckel.ImageClassificationFunction(func.function_id, credentials)  # bare id
        assert again.name == "FashionMNIST"
        func.delete()
        with pytest.raises(ValueError, match="404"):
            nyckel.ImageClassificationFunction(func.function_id, credentials)

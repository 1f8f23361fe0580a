"""BatchingEncoder: correctness under concurrency, coalescing, overload, error routing, close."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from embeddings import (
    Backbone,
    BatchingEncoder,
    EncoderClosed,
    EncoderOverloaded,
)

POISON = "poison"  # image.info key: the model fails on it
EXPLODE = "explode"  # image.info key: preprocessing fails on it


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until true or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.002)


class GatedBackbone:
    """Wraps tiny-clip: encode waits while the gate is closed, logs batch sizes, fails on NaN."""

    def __init__(self, inner: Backbone) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.batches_started = 0
        self.batch_sizes: list[int] = []

    spec = property(lambda self: self.inner.spec)
    dim = property(lambda self: self.inner.dim)
    device = property(lambda self: self.inner.device)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        if image.info.get(EXPLODE):
            raise RuntimeError("cannot preprocess this one")
        tensor = self.inner.preprocess(image)
        return torch.full_like(tensor, float("nan")) if image.info.get(POISON) else tensor

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        self.batches_started += 1
        self.batch_sizes.append(batch.shape[0])
        assert self.gate.wait(10), "test gate never opened"
        if torch.isnan(batch).any():
            raise ValueError("poisoned batch")
        return self.inner.encode(batch)

    def encode_text(self, prompts: list[str]) -> np.ndarray | None:
        return None


class Call(threading.Thread):
    """Run ``encoder.encode`` in a thread, keeping its result or exception."""

    def __init__(self, encoder: BatchingEncoder, images: list[Image.Image], **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.encoder, self.images, self.kwargs = encoder, images, kwargs
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.encoder.encode(self.images, **self.kwargs)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            self.error = error

    def outcome(self) -> np.ndarray:
        self.join(10)
        assert not self.is_alive(), "caller still blocked"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def images(count: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)) for _ in range(count)
    ]


def direct(backbone: Backbone, batch: list[Image.Image]) -> np.ndarray:
    """Reference vectors: each image encoded alone."""
    return np.concatenate(
        [backbone.encode(backbone.preprocess(image).unsqueeze(0)) for image in batch]
    )


@pytest.fixture
def gated(tiny_backbone: Backbone) -> GatedBackbone:
    return GatedBackbone(tiny_backbone)


def hold_worker(encoder: BatchingEncoder, gated: GatedBackbone) -> Call:
    """Close the gate and park the worker inside a one-image batch."""
    gated.gate.clear()
    blocker = Call(encoder, images(1, seed=99))
    wait_until(lambda: gated.batches_started == 1)
    return blocker


def test_concurrent_callers_get_the_same_vectors_as_direct_encoding(
    tiny_backbone: Backbone,
) -> None:
    requests = [images(1 + index % 3, seed=index) for index in range(12)]
    start = threading.Barrier(len(requests))
    results: dict[int, np.ndarray] = {}

    with BatchingEncoder(tiny_backbone, max_batch=8, max_wait_ms=50) as encoder:

        def caller(index: int) -> None:
            start.wait()
            results[index] = encoder.encode(requests[index], timeout=30)

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        stats = encoder.stats()

    for index, batch in enumerate(requests):
        assert results[index].shape == (len(batch), tiny_backbone.dim)
        np.testing.assert_allclose(results[index], direct(tiny_backbone, batch), atol=1e-5)
    assert stats.images_encoded == sum(len(batch) for batch in requests)
    assert stats.mean_batch_size > 1


def test_two_workers_run_two_batches_at_once(gated: GatedBackbone) -> None:
    with BatchingEncoder(gated, max_batch=2, max_wait_ms=1, workers=2) as encoder:
        gated.gate.clear()
        requests = [images(2, seed=index) for index in range(3)]
        calls = [Call(encoder, batch) for batch in requests]
        wait_until(lambda: gated.batches_started == 2)  # both workers inside a forward pass
        # the third batch waits for a free worker
        wait_until(lambda: encoder.stats().queued_images == 2)
        assert gated.batches_started == 2
        gated.gate.set()
        for call, batch in zip(calls, requests, strict=True):
            np.testing.assert_allclose(call.outcome(), direct(gated.inner, batch), atol=1e-5)
    assert not encoder.running  # close stopped both


def test_queued_requests_coalesce_into_full_batches(gated: GatedBackbone) -> None:
    with BatchingEncoder(gated, max_batch=8, max_wait_ms=1) as encoder:
        blocker = hold_worker(encoder, gated)
        requests = [images(2, seed=index) for index in range(10)]
        calls = [Call(encoder, batch) for batch in requests]
        wait_until(lambda: encoder.stats().queued_images == 20)
        gated.gate.set()
        for call, batch in zip(calls, requests, strict=True):
            np.testing.assert_allclose(call.outcome(), direct(gated.inner, batch), atol=1e-5)
        blocker.outcome()
        stats = encoder.stats()
    assert gated.batch_sizes == [1, 8, 8, 4]
    assert stats.batches_run == 4 and stats.mean_batch_size == 21 / 4


def test_a_request_larger_than_max_batch_is_split_and_kept_in_order(
    gated: GatedBackbone,
) -> None:
    batch = images(19, seed=5)
    with BatchingEncoder(gated, max_batch=8, max_wait_ms=1) as encoder:
        vectors = encoder.encode(batch)
    np.testing.assert_allclose(vectors, direct(gated.inner, batch), atol=1e-5)
    assert max(gated.batch_sizes) <= 8 and sum(gated.batch_sizes) == 19


def test_overload_is_refused_immediately_with_a_retry_estimate(gated: GatedBackbone) -> None:
    with BatchingEncoder(gated, max_batch=4, max_wait_ms=1, max_queue=4) as encoder:
        blocker = hold_worker(encoder, gated)
        queued = [Call(encoder, images(2, seed=index)) for index in range(2)]
        wait_until(lambda: encoder.stats().pending_images == 4)

        started = time.monotonic()
        with pytest.raises(EncoderOverloaded) as raised:
            encoder.encode(images(1, seed=7))
        assert time.monotonic() - started < 1
        assert raised.value.retry_after > 0
        assert encoder.stats().rejected_requests == 1
        with pytest.raises(ValueError, match="exceed the encoder queue size"):
            encoder.encode(images(5, seed=8))

        gated.gate.set()
        for call in [blocker, *queued]:
            assert call.outcome().shape[0] in (1, 2)
        assert encoder.encode(images(1, seed=7)).shape == (1, gated.dim)  # room again


def test_model_errors_reach_only_the_request_that_caused_them(gated: GatedBackbone) -> None:
    with BatchingEncoder(gated, max_batch=8, max_wait_ms=1) as encoder:
        blocker = hold_worker(encoder, gated)
        poisoned = images(2, seed=1)
        poisoned[1].info[POISON] = True
        healthy = images(3, seed=2)
        bad_call, good_call = Call(encoder, poisoned), Call(encoder, healthy)
        wait_until(lambda: encoder.stats().queued_images == 5)
        gated.gate.set()

        with pytest.raises(ValueError, match="poisoned batch"):
            bad_call.outcome()
        np.testing.assert_allclose(good_call.outcome(), direct(gated.inner, healthy), atol=1e-5)
        blocker.outcome()
    assert 5 in gated.batch_sizes  # both requests really shared the failing batch


def test_preprocessing_errors_stay_in_the_caller_and_free_the_queue(
    gated: GatedBackbone,
) -> None:
    with BatchingEncoder(gated, max_queue=4) as encoder:
        bad = images(3, seed=1)
        bad[2].info[EXPLODE] = True
        with pytest.raises(RuntimeError, match="cannot preprocess"):
            encoder.encode(bad)
        assert encoder.stats().pending_images == 0
        assert encoder.encode(images(4, seed=2)).shape == (4, gated.dim)


def test_close_fails_queued_callers_instead_of_hanging(gated: GatedBackbone) -> None:
    encoder = BatchingEncoder(gated, max_batch=2, max_wait_ms=1)
    blocker = hold_worker(encoder, gated)
    queued = [Call(encoder, images(2, seed=index)) for index in range(3)]
    wait_until(lambda: encoder.stats().queued_images == 6)

    encoder.close(timeout=0)
    for call in queued:
        with pytest.raises(EncoderClosed):
            call.outcome()
    with pytest.raises(EncoderClosed):
        encoder.encode(images(1, seed=3))

    gated.gate.set()  # the batch that was already running still completes
    assert blocker.outcome().shape == (1, gated.dim)
    wait_until(lambda: not encoder.running)


def test_timed_out_request_is_dropped_from_the_queue(gated: GatedBackbone) -> None:
    with BatchingEncoder(gated, max_batch=8, max_wait_ms=1) as encoder:
        blocker = hold_worker(encoder, gated)
        with pytest.raises(TimeoutError):
            encoder.encode(images(3, seed=4), timeout=0.05)
        gated.gate.set()
        blocker.outcome()
        assert encoder.encode(images(1, seed=5)).shape == (1, gated.dim)
        assert encoder.stats().images_encoded == 2  # the abandoned 3 were never encoded


def test_empty_request_and_context_manager(tiny_backbone: Backbone) -> None:
    with BatchingEncoder(tiny_backbone) as encoder:
        assert encoder.encode([]).shape == (0, tiny_backbone.dim)
        assert encoder.backbone is tiny_backbone
    assert encoder.closed and not encoder.running
    with pytest.raises(EncoderClosed):
        encoder.encode(images(1, seed=0))


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        BatchingEncoder(object(), max_batch=0)  # type: ignore[arg-type]


def test_batch_observer_sees_every_forward_pass_and_cannot_break_the_worker(
    tiny_backbone: Backbone,
) -> None:
    seen: list[tuple[int, float]] = []

    def observe(images: int, seconds: float) -> None:
        seen.append((images, seconds))
        raise RuntimeError("a buggy observer")  # logged; the worker carries on

    with BatchingEncoder(tiny_backbone, max_batch=4, max_wait_ms=1, on_batch=observe) as encoder:
        assert encoder.encode(images(6, seed=0)).shape == (6, tiny_backbone.dim)
        assert encoder.encode(images(1, seed=1)).shape == (1, tiny_backbone.dim)
        stats = encoder.stats()
    assert len(seen) == stats.batches_run and sum(n for n, _ in seen) == stats.images_encoded == 7
    assert all(seconds >= 0 for _, seconds in seen)

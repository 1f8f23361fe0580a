"""Overload: a full embedding queue answers 503 + Retry-After at once; admitted requests stay fast.

The backbone is slowed down to a fixed time per forward pass (through the runtime's own encoder
pool, no globals), the encoder takes one image per batch and queues at most ``QUEUE_LIMIT``, and a
burst of concurrent invokes arrives. Without the bound every request would be queued and the last
one would wait ``BURST * PER_BATCH_S``; with it, an admitted request waits for a bounded number of
forward passes (counted, not timed).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from api.app import create_app
from service.settings import Settings
from tests.conftest import AUTH, RED, add_colour_samples, data_uri, png_bytes

QUEUE_LIMIT = 4
PER_BATCH_S = 0.05
BURST = 48


def _slow_down(client: TestClient, monkeypatch: pytest.MonkeyPatch, waits: list[int]) -> int:
    """Make every forward pass of the app's tiny backbone take at least ``PER_BATCH_S``, and
    append to ``waits``, for each request the encoder admits, the forward passes (any worker's)
    made from its admission to its answer. Returns the encoder's worker count."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    encoder = runtime.encoders.get("tiny-clip")
    backbone = encoder.backbone
    fast_encode, admit = backbone.encode, encoder.encode
    passes: list[None] = []  # one entry per forward pass made (list.append is atomic)

    def slow_encode(batch: torch.Tensor) -> np.ndarray:
        started = time.monotonic()
        vectors = fast_encode(batch)
        time.sleep(max(0.0, PER_BATCH_S - (time.monotonic() - started)))  # the model's compute
        passes.append(None)
        return vectors

    def counted_encode(images: Any, timeout: float | None = None) -> np.ndarray:
        before = len(passes)
        vectors = admit(images, timeout)  # a full queue raises here, before any wait
        waits.append(len(passes) - before)
        return vectors

    monkeypatch.setattr(backbone, "encode", slow_encode)
    monkeypatch.setattr(encoder, "encode", counted_encode)
    return len(encoder._workers)


def test_burst_beyond_the_queue_gets_503_with_retry_after(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = dataclasses.replace(settings, queue_limit=QUEUE_LIMIT, batch_size=1, batch_wait_ms=0)
    with TestClient(create_app(settings), headers=AUTH) as client:
        fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
        add_colour_samples(client, fid, per_label=4)
        assert client.post(f"/v1/functions/{fid}/train").status_code == 200
        waits: list[int] = []
        workers = _slow_down(client, monkeypatch, waits)

        bodies = [{"data": data_uri(png_bytes(RED, seed=1000 + i))} for i in range(BURST)]
        results: list[tuple[int, float, str | None]] = []
        lock = threading.Lock()
        start = threading.Barrier(BURST)

        def invoke(body: dict[str, str]) -> None:
            start.wait()
            began = time.monotonic()
            response = client.post(f"/v1/functions/{fid}/invoke", json=body)
            elapsed = time.monotonic() - began
            with lock:
                results.append((response.status_code, elapsed, response.headers.get("retry-after")))

        threads = [threading.Thread(target=invoke, args=(body,)) for body in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(results) == BURST

        statuses = Counter(status for status, _, _ in results)
        assert set(statuses) <= {200, 503}, statuses  # no other error, no 5xx but the 503
        assert statuses[503] > 0 and statuses[200] > 0, statuses
        for status, _, retry_after in results:
            if status == 503:
                assert retry_after is not None and int(retry_after) >= 1
        # Once admitted, a request waits for the passes in flight (one per worker), the queue
        # ahead of it (QUEUE_LIMIT - 1 at most), its own, and those other workers make meanwhile
        # (up to QUEUE_LIMIT + 2 * workers - 1); twice the queue and workers leaves room for
        # passes that end while an answered request's thread wakes. Counted in passes, not
        # seconds, so a slow machine cannot fail it; an unbounded queue would hold the last
        # request for about BURST passes.
        assert len(waits) == statuses[200]
        bound = 2 * (QUEUE_LIMIT + workers)
        assert max(waits) <= bound < BURST, (waits, bound)
        admitted = [elapsed for status, elapsed, _ in results if status == 200]
        rejected = [elapsed for status, elapsed, _ in results if status == 503]
        stats = client.app.state.runtime.encoders.get("tiny-clip").stats()  # type: ignore[attr-defined]
        assert stats.rejected_requests == statuses[503]
        print(  # docs/reliability.md's figures (pytest -s)
            f"\noverload: {BURST} concurrent invokes, queue_limit={QUEUE_LIMIT}, "
            f"{PER_BATCH_S * 1000:.0f} ms/batch: {statuses[200]} x 200, {statuses[503]} x 503; "
            f"admitted max {max(admitted) * 1000:.0f} ms (at most {max(waits)} forward passes "
            f"once admitted, bound {bound}), "
            f"rejected max {max(rejected) * 1000:.0f} ms"
        )

        # The service recovers at once: the next request is admitted.
        after = client.post(f"/v1/functions/{fid}/invoke", json=bodies[0])
        assert after.status_code == 200, after.text

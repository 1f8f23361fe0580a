"""Overload: a full embedding queue answers 503 + Retry-After at once; admitted requests stay fast.

The backbone is slowed down to a fixed time per forward pass (through the runtime's own encoder
pool, no globals), the encoder takes one image per batch and queues at most ``QUEUE_LIMIT``, and a
burst of concurrent invokes arrives. Without the bound every request would be queued and the last
one would wait ``BURST * PER_BATCH_S``; with it, an admitted request waits for at most about
``QUEUE_LIMIT + 1`` batches.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter

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


def _slow_down(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every forward pass of the app's tiny backbone take at least ``PER_BATCH_S``."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    backbone = runtime.encoders.get("tiny-clip").backbone
    fast_encode = backbone.encode

    def slow_encode(batch: torch.Tensor) -> np.ndarray:
        started = time.monotonic()
        vectors = fast_encode(batch)
        time.sleep(max(0.0, PER_BATCH_S - (time.monotonic() - started)))  # the model's compute
        return vectors

    monkeypatch.setattr(backbone, "encode", slow_encode)


def test_burst_beyond_the_queue_gets_503_with_retry_after(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = dataclasses.replace(settings, queue_limit=QUEUE_LIMIT, batch_size=1, batch_wait_ms=0)
    with TestClient(create_app(settings), headers=AUTH) as client:
        fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
        add_colour_samples(client, fid, per_label=4)
        assert client.post(f"/v1/functions/{fid}/train").status_code == 200
        _slow_down(client, monkeypatch)

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
        # An admitted request waits for at most the queue ahead of it plus its own batch. The
        # bound allows 4x that plus a second for HTTP, decoding and capture on a busy CPU; an
        # unbounded queue would take BURST * PER_BATCH_S (2.4 s) for the last request.
        admitted = [elapsed for status, elapsed, _ in results if status == 200]
        bound = 4 * (QUEUE_LIMIT + 1) * PER_BATCH_S + 1.0
        assert max(admitted) < bound, (max(admitted), bound)
        rejected = [elapsed for status, elapsed, _ in results if status == 503]
        stats = client.app.state.runtime.encoders.get("tiny-clip").stats()  # type: ignore[attr-defined]
        assert stats.rejected_requests == statuses[503]
        print(  # docs/reliability.md's figures (pytest -s)
            f"\noverload: {BURST} concurrent invokes, queue_limit={QUEUE_LIMIT}, "
            f"{PER_BATCH_S * 1000:.0f} ms/batch: {statuses[200]} x 200, {statuses[503]} x 503; "
            f"admitted max {max(admitted) * 1000:.0f} ms (bound {bound * 1000:.0f} ms), "
            f"rejected max {max(rejected) * 1000:.0f} ms"
        )

        # The service recovers at once: the next request is admitted.
        after = client.post(f"/v1/functions/{fid}/invoke", json=bodies[0])
        assert after.status_code == 200, after.text

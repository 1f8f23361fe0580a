"""How many torch threads the encoder worker uses on CPU: measured per batch size, not guessed.

The right count depends on the batch and on what else the machine runs. On 2 cores with
efficientnet-lite0 (``python -m bench.serving --encoder-threads 1|2``), one client alone was
answered faster with one thread (p50 33 vs 45 ms), while 16 clients were served at 0.66-0.69 of
a raw loop's throughput with one thread and up to 1.09 with two. :class:`ThreadTuner` keeps a
moving average of seconds per image for each candidate count and batch-size bucket, runs each
candidate a few times first, then uses the fastest and keeps trying the others now and then, so
a change of load is noticed. Tuned, one machine served 1.17-1.18 of the raw loop (one client p50
33-34 ms) and a later one 0.82-1.06 over six runs (46-54 ms). Both figures predate the frozen
graph (:func:`embeddings.backbone.frozen_graph`) and B2's steady window; docs/performance.md
has the latest run."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

logger = logging.getLogger(__name__)

# Torch's intra-op threads as the process started (one per physical core unless configured);
# read once because worker threads change the default that later threads see.
PROCESS_TORCH_THREADS = torch.get_num_threads()


def thread_choices(device: torch.device) -> list[int] | None:
    """Candidate torch thread counts for an encoder worker: all cores and all but one on CPU.

    Args:
        device: where the backbone runs; on an accelerator the CPU thread count hardly matters
            and is left alone (None).
    """
    if device.type != "cpu":
        return None
    return sorted({max(1, PROCESS_TORCH_THREADS - 1), PROCESS_TORCH_THREADS})


def batch_bucket(batch_size: int) -> int:
    """Batch sizes that share measurements: 1, 2-3, 4-7, 8-15, ..."""
    return batch_size.bit_length()


@dataclass
class _Bucket:
    runs: dict[int, int] = field(default_factory=dict)  # threads -> batches measured
    seconds_per_image: dict[int, float] = field(default_factory=dict)  # moving averages
    batches: int = 0  # batches chosen for this bucket


class ThreadTuner:
    """Chooses a thread count per batch from measured seconds per image (not thread-safe)."""

    def __init__(
        self,
        choices: Sequence[int],
        *,
        warmup: int = 3,
        explore_every: int = 50,
        smoothing: float = 0.2,
    ) -> None:
        """
        Args:
            choices: candidate thread counts (each >= 1).
            warmup: batches each candidate runs in a bucket before the tuner compares them.
            explore_every: afterwards, every this many batches of a bucket runs the least-tried
                other candidate once, so the estimates follow the machine's load.
            smoothing: weight of the newest measurement in the moving average.
        """
        if not choices or min(choices) < 1:
            raise ValueError("thread choices must be a non-empty list of counts >= 1")
        if warmup < 1 or explore_every < 2 or not 0 < smoothing <= 1:
            raise ValueError("warmup >= 1, explore_every >= 2 and 0 < smoothing <= 1 required")
        self.choices = sorted(set(choices))
        self._warmup = warmup
        self._explore_every = explore_every
        self._smoothing = smoothing
        self._buckets: dict[int, _Bucket] = {}

    def choose(self, batch_size: int) -> int:
        """The thread count to run a batch of ``batch_size`` images with."""
        bucket = self._buckets.setdefault(batch_bucket(batch_size), _Bucket())
        bucket.batches += 1
        least_run = min(self.choices, key=lambda threads: bucket.runs.get(threads, 0))
        if bucket.runs.get(least_run, 0) < self._warmup:
            return least_run
        best = self.fastest(batch_size)
        assert best is not None
        if bucket.batches % self._explore_every == 0:
            others = [threads for threads in self.choices if threads != best]
            if others:
                return min(others, key=lambda threads: bucket.runs[threads])
        return best

    def record(self, batch_size: int, threads: int, seconds: float) -> None:
        """Measured wall time of one forward pass of ``batch_size`` images; logs the fastest count
        once every candidate has been measured, and again whenever it changes."""
        bucket = self._buckets.setdefault(batch_bucket(batch_size), _Bucket())
        before = self.fastest(batch_size)
        was_complete = len(bucket.seconds_per_image) == len(self.choices)
        per_image = seconds / batch_size
        previous = bucket.seconds_per_image.get(threads)
        bucket.seconds_per_image[threads] = (
            per_image if previous is None else previous + self._smoothing * (per_image - previous)
        )
        bucket.runs[threads] = bucket.runs.get(threads, 0) + 1
        after = self.fastest(batch_size)
        complete = len(bucket.seconds_per_image) == len(self.choices)
        if complete and (not was_complete or after != before):
            low = 1 << (batch_bucket(batch_size) - 1)
            logger.info(
                "encoder: batches of %d-%d images run with %d torch thread(s) (ms per image: %s)",
                low,
                2 * low - 1,
                after,
                ", ".join(
                    f"{count} thread(s) {value * 1000:.1f}"
                    for count, value in sorted(bucket.seconds_per_image.items())
                ),
            )

    def fastest(self, batch_size: int) -> int | None:
        """The measured fastest count for this batch size (None before any measurement)."""
        bucket = self._buckets.get(batch_bucket(batch_size))
        if bucket is None or not bucket.seconds_per_image:
            return None
        return min(bucket.seconds_per_image, key=bucket.seconds_per_image.__getitem__)

"""The fine-tune job on the Ray cluster (``--encoder ray``): never inside an API replica.

:func:`tune_on_ray` starts a :class:`TuneWorker` actor (one GPU where the cluster has any, else
one CPU), sends it the job and the labelled images' bytes, and waits, relaying the worker's phase
and progress to the caller and the caller's cancellation to the worker every ``poll_s``. The
actor is owned by the calling process: it ends with the job, and Ray ends it if the API replica
dies first, so a crash leaves nothing running and nothing recorded.

This module imports Ray: only the ``ray`` encoder imports it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from embeddings.backbones import load_backbone
from learner.tune_job import JobControl, TuneJob, TuneOutcome, run_tune_job


class TuneWorkerLost(RuntimeError):
    """The worker tuning the job died (its node lost, or killed) before it answered."""


@ray.remote
class TuneWorker:
    """Runs one :class:`TuneJob` with its own copy of the backbone."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._progress: tuple[str, float] = ("loading", 0.0)

    def run(self, job: TuneJob, images: Sequence[bytes]) -> TuneOutcome:
        backbone = load_backbone(job.spec)  # on the GPU Ray assigned, if any
        return run_tune_job(job, images, backbone.preprocess, backbone.device, self)

    def cancelled(self) -> bool:
        return self._stop.is_set()

    def phase(self, phase: str, done: float) -> None:
        self._progress = (phase, done)

    def progress(self) -> tuple[str, float]:
        return self._progress

    def cancel(self) -> None:
        self._stop.set()


def tune_on_ray(
    job: TuneJob, images: Sequence[bytes], control: JobControl, *, poll_s: float = 0.5
) -> TuneOutcome:
    """Run ``job`` on a Ray worker (this process must have joined Ray) and return its outcome.

    Raises:
        TrainingCancelled, NotEnoughData: as :func:`learner.tune_job.run_tune_job`, raised by
            the worker.
        TuneWorkerLost: the worker died first.
    """
    gpus = ray.cluster_resources().get("GPU", 0)
    options: dict[str, Any] = {"num_gpus": 1} if gpus else {"num_cpus": 1}
    # two threads: run() in one, progress() and cancel() beside it
    worker: Any = TuneWorker.options(max_concurrency=2, **options).remote()  # type: ignore[attr-defined]
    try:
        answer = worker.run.remote(job, list(images))  # a lazy sequence is read here
        cancelling = False
        while not ray.wait([answer], timeout=poll_s)[0]:
            phase, done = ray.get(worker.progress.remote())
            control.phase(phase, done)
            if not cancelling and control.cancelled():
                worker.cancel.remote()
                cancelling = True
        outcome: TuneOutcome = ray.get(answer)
        return outcome
    except RayTaskError as error:
        raise error.cause from None  # the job's own error (TrainingCancelled, NotEnoughData)
    except RayActorError as error:
        raise TuneWorkerLost(f"the fine-tune worker died: {error}") from error
    finally:
        ray.kill(worker)

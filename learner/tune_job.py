"""A fine-tune job's work, wherever it runs: in the API replica (``--encoder local``) or on the
Ray cluster (``--encoder ray``, :mod:`learner.ray_tuning`).

It decodes each labelled image, runs the backbone's frozen trunk once on it and on each of its
augmented views (seeded by the sample's id, so a rerun sees the same views), tunes the tail and a
new head on the fit rows (:func:`learner.finetune.fine_tune`, early-stopped on its own validation
split) and predicts the holdout rows the guard judges on. The frozen champion and the judgement
stay with the caller, which has the stored vectors and the database.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from embeddings import to_rgb
from embeddings.augment import augmented_views
from embeddings.decode import decode_image
from embeddings.tuning import split_tower, trunk_activations
from learner.errors import TrainingCancelled
from learner.finetune import TuneConfig, TuneResult, fine_tune

TRUNK_BATCH = 32


@dataclass(frozen=True)
class TuneJob:
    """What a fine-tune needs besides the images (plain data: it travels to a Ray worker).

    Attributes:
        spec: the function's backbone.
        sample_ids: the labelled samples, in the order of the images (they seed the views).
        labels: each sample's label.
        fit: rows the challenger is tuned on (it keeps its own validation split among them).
        holdout: rows the guard judges on; the job predicts them (none in a refit).
        config: the tuning recipe.
        max_pixels: the decoder's pixel limit.
    """

    spec: str
    sample_ids: list[str]
    labels: np.ndarray
    fit: np.ndarray
    holdout: np.ndarray
    config: TuneConfig
    max_pixels: int


@dataclass
class TuneOutcome:
    """The tuned challenger and its predictions of the job's holdout rows."""

    result: TuneResult
    holdout_predictions: np.ndarray


class JobControl(Protocol):
    """How a job reports and is stopped."""

    def cancelled(self) -> bool:
        """True once the job should stop (asked between batches and steps)."""
        ...

    def phase(self, phase: str, done: float) -> None:
        """The job is ``loading`` (images through the trunk) or ``training``, ``done`` (0..1)
        of the way through it."""
        ...


def run_tune_job(
    job: TuneJob,
    images: Sequence[bytes],
    preprocess: Callable[[Image.Image], torch.Tensor],
    device: torch.device,
    control: JobControl,
) -> TuneOutcome:
    """Tune a challenger on ``images`` (the stored bytes of ``job.sample_ids``, in order).

    Args:
        job: see :class:`TuneJob`.
        images: read one at a time (a lazy sequence keeps a large function's images out of
            memory).
        preprocess: the backbone's preprocessing (a decoded RGB image to a ``(3, H, W)`` tensor).
        device: where the trunk runs and the tail trains (the backbone's device).
        control: progress and cancellation.

    Raises:
        TrainingCancelled: ``control`` cancelled it.
        NotEnoughData: as :func:`learner.finetune.fine_tune`.
    """
    config = job.config
    tower = split_tower(job.spec, config.tuned_blocks)
    control.phase("loading", 0.0)
    originals, views = _activations(job, images, preprocess, tower.trunk, device, control)
    control.phase("training", 0.0)

    def progress(epoch: dict[str, float]) -> None:
        control.phase("training", epoch["epoch"] / config.max_epochs)

    tuned = fine_tune(
        tower.tail,  # a fresh copy: split_tower builds the network anew
        originals[job.fit],
        [view[job.fit] for view in views],
        job.labels[job.fit],
        config,
        should_stop=control.cancelled,
        progress=progress,
        device=device,
    )
    if tuned.stopped == "cancelled":
        raise TrainingCancelled("fine-tuning cancelled")
    holdout = originals[job.holdout]
    predictions = tuned.model.predict(holdout) if len(holdout) else np.empty(0, dtype=object)
    return TuneOutcome(tuned, predictions)


def _activations(
    job: TuneJob,
    images: Sequence[bytes],
    preprocess: Callable[[Image.Image], torch.Tensor],
    trunk: torch.nn.Module,
    device: torch.device,
    control: JobControl,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The trunk's activations (run on ``device``) of each image and of ``config.views``
    augmented views of it, on the CPU in float16."""
    trunk = trunk.to(device)
    count, views = len(job.sample_ids), job.config.views
    parts: list[list[torch.Tensor]] = [[] for _ in range(views + 1)]
    for start in range(0, count, TRUNK_BATCH):
        pixels: list[list[torch.Tensor]] = [[] for _ in range(views + 1)]
        for row in range(start, min(count, start + TRUNK_BATCH)):
            image = to_rgb(decode_image(images[row], max_pixels=job.max_pixels))
            seed = zlib.crc32(job.sample_ids[row].encode())
            for k, view in enumerate([image, *augmented_views(image, views, seed=seed)]):
                pixels[k].append(preprocess(view))
        for k in range(views + 1):
            batch = torch.stack(pixels[k]).to(device)
            parts[k].append(trunk_activations(trunk, [batch]).cpu())
        control.phase("loading", min(count, start + TRUNK_BATCH) / count)
        if control.cancelled():
            raise TrainingCancelled("fine-tuning cancelled")
    originals, *viewed = (torch.cat(part) for part in parts)
    return originals, viewed

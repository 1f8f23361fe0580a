"""What ``api/`` codes against to embed images, wherever the model runs.

Two implementations: the in-process :class:`embeddings.pool.EncoderPool` (the default) and
:class:`embeddings.ray_pool.RayEncoderPool` (Ray Serve encoder deployments shared by many API
replicas). Both raise the same errors (:mod:`embeddings.errors`) and give the same vectors for the
same backbone spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

from embeddings.tuning import TunedTail


@dataclass(frozen=True)
class EncoderStats:
    """Counters for tests, benchmarks and health endpoints."""

    batches_run: int  # forward passes, including failed ones and per-request retries
    images_encoded: int  # images sent through those forward passes
    queued_images: int  # preprocessed and waiting for the worker
    preprocessing_images: int  # admitted, still being preprocessed by their callers
    rejected_requests: int  # refused with EncoderOverloaded
    mean_batch_seconds: float | None  # moving average of one forward pass, None before the first

    @property
    def pending_images(self) -> int:
        """Images admitted but not yet taken by the worker (what the queue limit counts)."""
        return self.queued_images + self.preprocessing_images

    @property
    def mean_batch_size(self) -> float:
        """Images per forward pass so far (0.0 before the first batch)."""
        return self.images_encoded / self.batches_run if self.batches_run else 0.0


class ImageEncoder(Protocol):
    """One backbone's encoder: images in, L2-normalised float32 rows out."""

    def encode(self, images: Sequence[Image.Image], timeout: float | None = None) -> np.ndarray:
        """``(len(images), dim)`` rows in order; EncoderOverloaded when it cannot take more."""
        ...

    def encode_tuned(
        self, images: Sequence[Image.Image], tail: TunedTail, timeout: float | None = None
    ) -> np.ndarray:
        """``tail``'s rows, in order, of the activations of the backbone's frozen trunk cut
        at its block (:mod:`embeddings.tuning`); NotTunable where it cannot be cut there."""
        ...

    def stats(self) -> EncoderStats:
        """Counters for health and metrics endpoints."""
        ...

    @property
    def has_text_tower(self) -> bool:
        """Whether :meth:`encode_text` works (CLIP backbones do, EfficientNet-Lite0 does not)."""
        ...

    def encode_text(self, prompts: Sequence[str]) -> np.ndarray:
        """``(len(prompts), dim)`` unit rows in the image space; TextNotSupported without a text
        tower (see :mod:`embeddings.text`)."""
        ...


class ImageEncoderPool(Protocol):
    """Backbone spec -> encoder, with the default spec new functions pin."""

    @property
    def default_spec(self) -> str:
        """The concrete spec of the default backbone (``auto`` resolved)."""
        ...

    def resolve(self, spec: str | None) -> str:
        """Canonical spec a new function should pin (the default for None or ``auto``)."""
        ...

    def get(self, spec: str) -> ImageEncoder:
        """The encoder for ``spec`` (empty or ``auto``: the default), ready on return."""
        ...

    def loaded(self) -> list[str]:
        """Specs in use, sorted."""
        ...

    def close(self) -> None:
        """Release the encoders; later ``get`` calls raise EncoderClosed."""
        ...

"""``RayEncoder``: one backbone's Ray Serve encoder application, called like a BatchingEncoder.

Each image runs the backbone's pixel stage (resize, crop) in the caller's thread, on the API
replica's CPU, and travels to the application as a small uint8 array; a replica batches it with
the calls of every other API replica and answers with the vector. Ray's failures become the
in-process encoder's errors: Ray Serve's back-pressure (this process's handle already queues
``max_queued_requests`` calls) is :class:`EncoderOverloaded` with a Retry-After estimate, lost
replicas or a lost cluster are :class:`BackboneUnavailable`.

This module imports Ray: only the ``ray`` encoder imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import (
    BackPressureError,
    DeploymentUnavailableError,
    ReplicaUnavailableError,
)

from embeddings.backbone import empty_vectors
from embeddings.encoder_protocol import EncoderStats
from embeddings.errors import (
    BackboneUnavailable,
    EncoderClosed,
    EncoderOverloaded,
    TextNotSupported,
)
from embeddings.tuning import TunedTail

_LATENCY_SMOOTHING = 0.2  # weight of the newest call in the moving average of call latency
_MIN_RETRY_AFTER_S = 0.05
# Lost replicas or a lost cluster: the backbone cannot serve right now.
UNAVAILABLE = (
    DeploymentUnavailableError,
    ReplicaUnavailableError,
    RayActorError,
    ConnectionError,
)
T = TypeVar("T")


def off_event_loop(call: Callable[[], T]) -> T:
    """``call()``, in a helper thread if this thread runs an asyncio loop (the app's start-up):
    Serve refuses to wait for a response there. The loop waits all the same, as it does for an
    in-process model load.

    Args:
        call: blocks on Ray Serve responses.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return call()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="winnow-ray-wait") as helper:
        return helper.submit(call).result()


class RayEncoder:
    """One backbone's Ray Serve application, called like a :class:`BatchingEncoder`."""

    def __init__(
        self,
        handle: Any,
        *,
        spec: str,
        dim: int,
        pixel_stage: Callable[[Image.Image], Image.Image] | None,
        max_batch: int,
        max_queue: int,
        has_text_tower: bool = False,
    ) -> None:
        """Wrap a deployment handle.

        Args:
            handle: the application's ``DeploymentHandle``.
            spec: the concrete spec the replicas serve.
            dim: vector length.
            pixel_stage: run on each image before sending (None: send the RGB image).
            max_batch: the replicas' batch size (for Retry-After estimates).
            max_queue: requests this handle queues before refusing (for Retry-After estimates).
            has_text_tower: whether the replicas' backbone embeds text (``encode_text``).
        """
        self._has_text_tower = has_text_tower
        self._handle = handle
        self._spec = spec
        self._dim = dim
        self._pixel_stage = pixel_stage
        self._batches_queued = math.ceil(max_queue / max_batch) + 1
        self._lock = threading.Lock()
        self._mean_call_seconds: float | None = None
        self._in_flight = 0  # images sent and not answered yet
        self._images_encoded = 0
        self._rejected_requests = 0
        self._closed = False
        self._lost = False

    @property
    def spec(self) -> str:
        """The concrete backbone spec the vectors come from."""
        return self._spec

    @property
    def dim(self) -> int:
        """Length of the vectors."""
        return self._dim

    @property
    def lost(self) -> bool:
        """True once a call found the application gone or failing: look it up again."""
        return self._lost

    def encode(self, images: Sequence[Image.Image], timeout: float | None = None) -> np.ndarray:
        """Encode RGB images into ``(len(images), dim)`` float32 L2-normalised rows, in order.

        Args:
            images: decoded RGB images.
            timeout: seconds to wait for the vectors; None waits as long as it takes.

        Raises:
            EncoderOverloaded: this caller already queues as many requests as it may.
            BackboneUnavailable: the deployment or the cluster cannot serve.
            EncoderClosed: the pool is closed.
            TimeoutError: ``timeout`` passed first.
        """
        if self._closed:
            raise EncoderClosed("the encoder pool is closed")
        if not images:
            return empty_vectors(self._dim)
        return off_event_loop(lambda: self._encode(images, timeout))

    @property
    def has_text_tower(self) -> bool:
        """Whether :meth:`encode_text` works (the replicas' backbone is a CLIP model)."""
        return self._has_text_tower

    def encode_text(self, prompts: Sequence[str]) -> np.ndarray:
        """Unit rows for text prompts, embedded by a replica (see :mod:`embeddings.text`).

        Raises:
            TextNotSupported: the backbone has no text tower.
            BackboneUnavailable: the deployment or the cluster cannot serve.
            EncoderClosed: the pool is closed.
        """
        if self._closed:
            raise EncoderClosed("the encoder pool is closed")
        if not self._has_text_tower:
            raise TextNotSupported(f"backbone {self._spec} has no text tower: it cannot embed text")

        def call() -> np.ndarray:
            try:
                rows = self._handle.encode_text.remote(list(prompts)).result()
            except BaseException as error:
                domain_error = self._domain_error(error)
                if domain_error is error:
                    raise
                raise domain_error from error
            return np.ascontiguousarray(rows, dtype=np.float32)

        return off_event_loop(call)

    def encode_tuned(
        self, images: Sequence[Image.Image], tail: TunedTail, timeout: float | None = None
    ) -> np.ndarray:
        """Encode images for a tuned function, as :meth:`BatchingEncoder.encode_tuned` does: a
        replica runs the frozen trunk once per image (batched with every caller's, see
        :meth:`EncoderReplica.trunk`) and answers with its activations; ``tail`` runs here, on
        this process's CPU.

        Raises:
            NotTunable: the backbone cannot be cut at ``tail``'s block.
            ValueError: no images.
            EncoderOverloaded, BackboneUnavailable, EncoderClosed, TimeoutError: as :meth:`encode`.
        """
        if self._closed:
            raise EncoderClosed("the encoder pool is closed")
        if not images:
            raise ValueError("no images to encode")
        blocks = tail.tuned_blocks

        def send(pixels: np.ndarray) -> Any:
            return self._handle.trunk.remote((pixels, blocks))

        activations = off_event_loop(lambda: self._call(send, images, timeout))
        return tail.run(torch.from_numpy(np.stack(activations)))

    def _encode(self, images: Sequence[Image.Image], timeout: float | None) -> np.ndarray:
        rows = self._call(self._handle.remote, images, timeout)
        return np.ascontiguousarray(np.stack(rows), dtype=np.float32)

    def _call(
        self,
        send: Callable[[np.ndarray], Any],
        images: Sequence[Image.Image],
        timeout: float | None,
    ) -> list[Any]:
        """Send each image's pixels (``send`` makes the call) and wait for every answer."""
        payloads = [self._pixels(image) for image in images]  # this thread's CPU, not the GPU's
        started = time.monotonic()
        responses = []
        self._count(in_flight=len(payloads))
        try:
            responses = [send(pixels) for pixels in payloads]
            answers = []
            for response in responses:
                left = None if timeout is None else max(0.0, started + timeout - time.monotonic())
                answers.append(response.result(timeout_s=left))
        except BaseException as error:
            for response in responses:
                with contextlib.suppress(Exception):  # one that failed raises its error again
                    response.cancel()  # nothing waits for them any more
            domain_error = self._domain_error(error)
            self._count(
                in_flight=-len(payloads), rejected=isinstance(domain_error, EncoderOverloaded)
            )
            if domain_error is error:
                raise
            raise domain_error from error
        self._count(in_flight=-len(payloads), encoded=len(payloads))
        self._record_call(time.monotonic() - started)
        return answers

    def stats(self) -> EncoderStats:
        """This process's side of the counters: ``queued_images`` are images sent and not yet
        answered. Forward passes run on the replicas (Ray Serve's own metrics count them), so
        ``batches_run`` stays 0 and ``mean_batch_seconds`` None."""
        with self._lock:
            return EncoderStats(
                batches_run=0,
                images_encoded=self._images_encoded,
                queued_images=self._in_flight,
                preprocessing_images=0,
                rejected_requests=self._rejected_requests,
                mean_batch_seconds=None,
            )

    def close(self) -> None:
        """Refuse further calls (the deployment keeps serving other API replicas)."""
        self._closed = True

    def _pixels(self, image: Image.Image) -> np.ndarray:
        staged = self._pixel_stage(image) if self._pixel_stage is not None else image
        return np.asarray(staged.convert("RGB") if staged.mode != "RGB" else staged)

    def _count(self, *, in_flight: int, encoded: int = 0, rejected: bool = False) -> None:
        with self._lock:
            self._in_flight += in_flight
            self._images_encoded += encoded
            self._rejected_requests += int(rejected)

    def _record_call(self, seconds: float) -> None:
        with self._lock:
            if self._mean_call_seconds is None:
                self._mean_call_seconds = seconds
            else:
                self._mean_call_seconds += _LATENCY_SMOOTHING * (seconds - self._mean_call_seconds)

    def _domain_error(self, error: BaseException) -> BaseException:
        """The embeddings error a Ray failure stands for (others pass unchanged)."""
        cause = error.cause if isinstance(error, RayTaskError) else error
        if isinstance(cause, BackPressureError):
            return EncoderOverloaded(str(cause), retry_after=self._retry_after(cause))
        if isinstance(cause, UNAVAILABLE):
            self._lost = True
            reason = f"{type(cause).__name__}: {cause}"
            return BackboneUnavailable(f"the encoder for {self._spec} cannot serve ({reason})")
        if isinstance(cause, TimeoutError):
            return TimeoutError(f"encoding took longer than the timeout ({cause})")
        return error

    def _retry_after(self, error: BackPressureError) -> float:
        """The deployment's configured Retry-After, else the time for the queue ahead to clear."""
        if error.retry_after_s is not None:
            return max(_MIN_RETRY_AFTER_S, error.retry_after_s)
        with self._lock:
            per_call = self._mean_call_seconds or _MIN_RETRY_AFTER_S
        return max(_MIN_RETRY_AFTER_S, round(self._batches_queued * per_call, 3))

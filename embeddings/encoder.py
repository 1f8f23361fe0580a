"""``BatchingEncoder``: many request threads share one model through a bounded, coalescing queue.

Callers preprocess their own images (in their own threads, so resizing runs in parallel and a
preprocessing failure stays with its caller; on a GPU a request of several images is spread over
preprocessing threads), then queue the tensors and block on a future. One
worker thread owns the model: it takes the oldest pending images, waits at most ``max_wait_ms``
for more to arrive, and encodes up to ``max_batch`` images in one forward pass. A request larger
than ``max_batch`` is split into slices and reassembled in order.

On CPU the worker picks its torch thread count per batch from measured speed (all cores or all
but one, see :mod:`embeddings.threads`) unless a fixed count is given.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import numpy as np
import torch
from PIL import Image

from embeddings.backbone import Backbone, empty_vectors
from embeddings.encode_units import EncodeRequest, RequestSlice
from embeddings.encoder_protocol import EncoderStats
from embeddings.errors import EncoderClosed, EncoderOverloaded
from embeddings.text import backbone_has_text_tower, encode_text_or_raise
from embeddings.threads import ThreadTuner, thread_choices
from embeddings.tuning import ServedTail, TunedServing, TunedTail

logger = logging.getLogger(__name__)

# Called by the worker after each forward pass with its image count and seconds (failed ones too).
BatchObserver = Callable[[int, float], None]

_LATENCY_SMOOTHING = 0.2  # weight of the newest batch in the moving average of batch latency
_MIN_RETRY_AFTER_S = 0.05


class BatchingEncoder:
    """Thread-safe front of a :class:`Backbone` that coalesces concurrent requests into batches."""

    def __init__(
        self,
        backbone: Backbone,
        *,
        max_batch: int = 16,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        torch_threads: int | None = -1,
        on_batch: BatchObserver | None = None,
        preprocess_threads: int | None = None,
        workers: int = 1,
    ) -> None:
        """Start the worker threads.

        Args:
            backbone: the model; from now on only the worker thread calls its ``encode``.
            max_batch: most images per forward pass.
            max_wait_ms: how long the worker waits for more images after the first arrives.
            max_queue: most images allowed to wait; beyond it ``encode`` raises EncoderOverloaded.
            torch_threads: torch intra-op threads of the worker; -1 (default) tunes them per
                batch on CPU (:class:`embeddings.threads.ThreadTuner`) and leaves them alone on
                accelerators; None leaves torch's setting alone.
            on_batch: called by the worker after each forward pass with ``(images, seconds)``,
                e.g. to feed metrics; it runs on the worker thread, so it must be quick (what it
                raises is logged and ignored).
            preprocess_threads: threads that preprocess the images of a request of several
                images (batch invoke) in parallel; 0 preprocesses in the caller's thread; None
                (default): every core on an accelerator, which would otherwise wait for one
                thread's resizing, and 0 on CPU, whose cores already run the model.
            workers: threads that each take a batch and run it, concurrently (the backbone's
                forward pass holds no lock): on a CPU of few cores, two single-threaded forward
                passes keep the cores busier than one two-threaded pass while request threads
                share them. With more than one, ``torch_threads`` -1 gives each worker its
                share of the process's torch threads (not tuned per batch).
        """
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        if torch_threads is not None and torch_threads < 1 and torch_threads != -1:
            raise ValueError("torch_threads must be >= 1, -1 (automatic) or None")
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._tuner: ThreadTuner | None = None
        if torch_threads == -1 and workers > 1:
            torch_threads = max(1, torch.get_num_threads() // workers)
        if torch_threads == -1:
            choices = thread_choices(backbone.device)
            torch_threads = None
            if choices is not None and len(choices) == 1:
                torch_threads = choices[0]
            elif choices is not None:
                self._tuner = ThreadTuner(choices)
        self._torch_threads = torch_threads
        if preprocess_threads is None:
            preprocess_threads = (os.cpu_count() or 1) if backbone.device.type != "cpu" else 0
        self._preprocessors = (
            ThreadPoolExecutor(preprocess_threads, thread_name_prefix="winnow-preprocess")
            if preprocess_threads > 0
            else None
        )
        self._backbone = backbone
        self._max_batch = max_batch
        self._max_wait_s = max_wait_ms / 1000.0
        self._max_queue = max_queue
        self._lock = threading.Lock()
        self._text_lock = threading.Lock()
        self._work_ready = threading.Condition(self._lock)
        self._queue: deque[RequestSlice] = deque()
        self._queued_images = 0
        self._admitted_images = 0  # admitted but still being preprocessed by their caller
        self._closed = False
        self._batches_run = 0
        self._images_encoded = 0
        self._rejected_requests = 0
        self._mean_batch_seconds: float | None = None
        self._on_batch = on_batch
        self._tuned: TunedServing | None = None  # tuned functions' trunks and tails, at first use
        self._workers = [
            threading.Thread(target=self._run, name=f"winnow-encoder[{backbone.spec}]", daemon=True)
            for _ in range(workers)
        ]
        for worker in self._workers:
            worker.start()

    @property
    def max_batch(self) -> int:
        """Most images per forward pass."""
        return self._max_batch

    @property
    def torch_threads(self) -> int | None:
        """The worker's fixed torch thread count (None: tuned per batch, or torch's setting)."""
        return self._torch_threads

    def tuned_threads(self, batch_size: int) -> int | None:
        """The thread count measured fastest for batches of ``batch_size`` so far (None: not
        tuned, or nothing measured yet)."""
        with self._lock:
            return self._tuner.fastest(batch_size) if self._tuner is not None else None

    @property
    def backbone(self) -> Backbone:
        """The wrapped backbone (its ``spec`` and ``dim`` describe the vectors)."""
        return self._backbone

    def encode(self, images: Sequence[Image.Image], timeout: float | None = None) -> np.ndarray:
        """Encode RGB images into ``(len(images), dim)`` float32 L2-normalised rows, in order.

        Args:
            images: decoded RGB images.
            timeout: seconds to wait for the result; None waits as long as it takes.

        Raises:
            EncoderOverloaded: more than ``max_queue`` images would be waiting.
            EncoderClosed: the encoder is closed, or was closed before the images were encoded.
            TimeoutError: ``timeout`` passed first (the images are then dropped from the queue).
            ValueError: the request alone is larger than ``max_queue``.
            Exception: whatever the backbone raised for these images.
        """
        if not images:
            return empty_vectors(self._backbone.dim)
        vectors: np.ndarray = self._submit(images, timeout, None)
        return vectors

    def encode_tuned(
        self, images: Sequence[Image.Image], tail: TunedTail, timeout: float | None = None
    ) -> np.ndarray:
        """Encode images for a tuned function: ``tail``'s rows, in order, of the activations of
        the frozen trunk it is cut from (:class:`embeddings.tuning.SharedTrunk`, one pass for
        every request cut at the same block in a batch), both in the backbone's runtime and
        precision (:class:`embeddings.tuning.TunedServing`; a tail is compiled at its first
        call, in the caller's thread).

        Raises:
            NotTunable: the backbone cannot be cut (a CLIP ViT), or not at ``tail``'s block.
            EncoderOverloaded, EncoderClosed, TimeoutError, ValueError: as :meth:`encode`.
        """
        if not images:
            raise ValueError("no images to encode")
        served = self._tuned_serving().tail(tail)  # compiled here at first use, not in the worker
        rows: np.ndarray = self._submit(images, timeout, served)
        return rows

    def _tuned_serving(self) -> TunedServing:
        """The tuned functions' trunks and tails, in the backbone's runtime and precision."""
        serving = self._tuned
        if serving is None:
            built = TunedServing.for_backbone(self._backbone)
            with self._lock:
                serving = self._tuned = self._tuned or built
        return serving

    def _submit(
        self, images: Sequence[Image.Image], timeout: float | None, tail: ServedTail | None
    ) -> np.ndarray:
        """Queue the images' slices and wait for the request's result."""
        count = len(images)
        if count > self._max_queue:
            raise ValueError(f"{count} images exceed the encoder queue size {self._max_queue}")
        self._admit(count)
        try:
            tensors = torch.stack(self._preprocess(images))
        except BaseException:
            with self._lock:
                self._admitted_images -= count
            raise
        request = EncodeRequest(tensors, tail)
        with self._work_ready:
            self._admitted_images -= count  # same critical section as queueing: no gap to overfill
            if self._closed:
                raise EncoderClosed("the encoder is closed")
            for start in range(0, count, self._max_batch):
                self._queue.append(
                    RequestSlice(request, start, min(count, start + self._max_batch))
                )
            self._queued_images += count
            self._work_ready.notify()
        try:
            return request.future.result(timeout)
        except TimeoutError:
            request.future.cancel()  # the worker skips cancelled slices
            raise TimeoutError(f"encoding {count} images took longer than {timeout} s") from None

    @property
    def has_text_tower(self) -> bool:
        """Whether :meth:`encode_text` works (CLIP backbones)."""
        return backbone_has_text_tower(self._backbone)

    def encode_text(self, prompts: Sequence[str]) -> np.ndarray:
        """Encode prompts into ``(len(prompts), dim)`` unit rows of the image space.

        Text is rare (zero-shot heads are built when labels change), so it runs in the caller's
        thread, beside the image worker rather than queued behind it: the text tower is its own
        set of frozen weights, and inference does not modify the model. Text calls take turns.

        Args:
            prompts: free text such as ``"a photo of a cat"``.

        Raises:
            TextNotSupported: the backbone has no text tower.
            EncoderClosed: the encoder is closed.
        """
        if self._closed:
            raise EncoderClosed("the encoder is closed")
        with self._text_lock:
            return encode_text_or_raise(self._backbone, prompts)

    def _preprocess(self, images: Sequence[Image.Image]) -> list[torch.Tensor]:
        """Each image's tensor, in order; several at once on the preprocessing threads."""
        if self._preprocessors is None or len(images) < 2:
            return [self._backbone.preprocess(image) for image in images]
        try:
            return list(self._preprocessors.map(self._backbone.preprocess, images))
        except RuntimeError as error:  # the pool shut down: close() ran meanwhile
            if self._closed:
                raise EncoderClosed("the encoder is closed") from error
            raise

    def stats(self) -> EncoderStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return EncoderStats(
                batches_run=self._batches_run,
                images_encoded=self._images_encoded,
                queued_images=self._queued_images,
                preprocessing_images=self._admitted_images,
                rejected_requests=self._rejected_requests,
                mean_batch_seconds=self._mean_batch_seconds,
            )

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting work, fail queued requests with EncoderClosed and stop the worker.

        The batch already running finishes and its callers get their vectors.

        Args:
            timeout: seconds to wait for the worker to finish its current batch (None: no limit).
        """
        with self._work_ready:
            self._closed = True
            abandoned = list(self._queue)
            self._queue.clear()
            self._queued_images = 0
            self._work_ready.notify_all()
        for piece in abandoned:
            piece.request.fail(EncoderClosed("the encoder was closed before these images ran"))
        if self._preprocessors is not None:
            self._preprocessors.shutdown(wait=False)
        for worker in self._workers:
            if threading.current_thread() is not worker:
                worker.join(timeout)

    @property
    def running(self) -> bool:
        """True while a worker thread is alive (they exit after :meth:`close`)."""
        return any(worker.is_alive() for worker in self._workers)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> BatchingEncoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _admit(self, count: int) -> None:
        """Reserve queue room for ``count`` images or refuse at once."""
        with self._lock:
            if self._closed:
                raise EncoderClosed("the encoder is closed")
            waiting = self._queued_images + self._admitted_images
            if waiting + count > self._max_queue:
                self._rejected_requests += 1
                raise EncoderOverloaded(
                    f"{waiting} images are already waiting for the encoder "
                    f"(limit {self._max_queue})",
                    retry_after=self._retry_after(waiting),
                )
            self._admitted_images += count

    def _retry_after(self, waiting: int) -> float:
        """Seconds until the current backlog should be cleared; caller holds the lock."""
        per_batch = self._mean_batch_seconds or max(self._max_wait_s, _MIN_RETRY_AFTER_S)
        batches_ahead = math.ceil(waiting / self._max_batch) + 1
        return max(_MIN_RETRY_AFTER_S, round(batches_ahead * per_batch, 3))

    def _run(self) -> None:
        """Worker loop: take a batch, encode it, deliver rows; exit once closed and drained."""
        if self._torch_threads is not None:
            # Applies to this thread (torch threads started later default to it as well).
            torch.set_num_threads(self._torch_threads)
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                self._encode_batch(batch)

    def _next_batch(self) -> list[RequestSlice] | None:
        """Block for work, then gather up to max_batch images within max_wait; None when closed."""
        with self._work_ready:
            while not self._queue and not self._closed:
                self._work_ready.wait()
            if self._closed and not self._queue:
                return None
            batch: list[RequestSlice] = []
            size = 0
            deadline = time.monotonic() + self._max_wait_s
            while size < self._max_batch:
                if not self._queue:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closed:
                        break
                    self._work_ready.wait(remaining)
                    continue
                if batch and self._queue[0].request.cut != batch[0].request.cut:
                    break  # it needs another trunk: it leads the next batch
                piece = self._queue.popleft()
                self._queued_images -= piece.size
                if piece.request.future.done():  # caller timed out, or an earlier slice failed
                    continue
                room = self._max_batch - size
                if piece.size > room:
                    piece, rest = piece.split(room)
                    self._queue.appendleft(rest)
                    self._queued_images += rest.size
                batch.append(piece)
                size += piece.size
            return batch

    def _encode_batch(self, batch: list[RequestSlice]) -> None:
        """Run one forward pass; on failure retry per request so only the culprit sees the error."""
        inputs = torch.cat([piece.request.tensors[piece.start : piece.stop] for piece in batch])
        size = inputs.shape[0]
        threads = None
        if self._tuner is not None:
            with self._lock:
                threads = self._tuner.choose(size)
            torch.set_num_threads(threads)
        started = time.monotonic()
        try:
            cut = batch[0].request.cut
            rows: list[np.ndarray] = []
            if cut is None:
                vectors = self._backbone.encode(inputs)
                if vectors.shape != (size, self._backbone.dim):
                    raise RuntimeError(f"backbone returned shape {vectors.shape} for {size} images")
                rows = np.split(vectors, np.cumsum([piece.size for piece in batch])[:-1])
            else:
                assert self._tuned is not None  # encode_tuned built it before queueing
                activations = self._tuned.trunk(cut).activations(inputs)
                offset = 0
                for piece in batch:
                    assert piece.request.tail is not None
                    rows.append(piece.request.tail.run(activations[offset : offset + piece.size]))
                    offset += piece.size
        except Exception as error:
            self._record_batch(size, time.monotonic() - started)
            by_request: dict[int, list[RequestSlice]] = {}
            for piece in batch:
                by_request.setdefault(id(piece.request), []).append(piece)
            if len(by_request) > 1:
                for pieces in by_request.values():
                    self._encode_batch(pieces)
            else:
                batch[0].request.fail(error)
            return
        self._record_batch(size, time.monotonic() - started, threads)
        for piece, piece_rows in zip(batch, rows, strict=True):
            piece.request.deliver(piece.start, piece_rows)

    def _record_batch(self, images: int, seconds: float, threads: int | None = None) -> None:
        """Count a forward pass; ``threads``: the tuned thread count of a successful one."""
        with self._lock:
            if threads is not None and self._tuner is not None:
                self._tuner.record(images, threads, seconds)
            self._batches_run += 1
            self._images_encoded += images
            if self._mean_batch_seconds is None:
                self._mean_batch_seconds = seconds
            else:
                self._mean_batch_seconds += _LATENCY_SMOOTHING * (
                    seconds - self._mean_batch_seconds
                )
        if self._on_batch is not None:
            try:
                self._on_batch(images, seconds)
            except Exception:  # an observer's bug must not kill the worker every caller waits on
                logger.exception("encoder batch observer failed")

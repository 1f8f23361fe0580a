"""The units of work in :class:`embeddings.encoder.BatchingEncoder`'s queue: a caller's request,
and the slices of it that the worker packs into batches (a request larger than a batch is split)."""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

import numpy as np
import torch

from embeddings.tuning import ServedTail


class EncodeRequest:
    """One caller's images, their output rows and the future the caller waits on.

    With a ``tail`` (a tuned function's), the worker runs the batch through the shared trunk
    cut at the tail's block and the rows are the tail's; without one, the backbone's vectors.
    """

    def __init__(self, tensors: torch.Tensor, tail: ServedTail | None = None) -> None:
        self.tensors = tensors
        self.tail = tail
        self.rows: np.ndarray | None = None  # float32, sized at the first delivery
        self.rows_missing = tensors.shape[0]  # only the worker thread touches this
        self.future: Future[np.ndarray] = Future()

    @property
    def cut(self) -> int | None:
        """The trunk this request needs (its tail's ``tuned_blocks``), None for the whole
        network; only requests with the same cut share a batch."""
        return None if self.tail is None else self.tail.tuned_blocks

    def fail(self, error: BaseException) -> None:
        """Deliver ``error`` unless the caller already got an answer or gave up."""
        if not self.future.done():
            # the caller may cancel (time out) between done() and here
            with contextlib.suppress(InvalidStateError):
                self.future.set_exception(error)

    def deliver(self, start: int, rows: np.ndarray) -> None:
        """Store encoded rows; resolve the future once every row has arrived."""
        if self.rows is None:
            self.rows = np.empty((self.tensors.shape[0], *rows.shape[1:]), np.float32)
        self.rows[start : start + rows.shape[0]] = rows
        self.rows_missing -= rows.shape[0]
        if self.rows_missing == 0 and not self.future.done():
            with contextlib.suppress(InvalidStateError):
                self.future.set_result(self.rows)


@dataclass(frozen=True)
class RequestSlice:
    """Rows ``start:stop`` of a request: the unit the worker packs into batches."""

    request: EncodeRequest
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    def split(self, head_size: int) -> tuple[RequestSlice, RequestSlice]:
        middle = self.start + head_size
        return RequestSlice(self.request, self.start, middle), RequestSlice(
            self.request, middle, self.stop
        )

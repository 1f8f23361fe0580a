"""Work that concurrent requests hand to one thread, which does it for all of them at once.

An encoder batch answers several invoke requests at the same moment, and each request's thread
then ran the head and capture for its own image: several threads at once contending for the GIL
and the function's capture lock, each doing vector operations on one row. With a
:class:`Combiner`, the first thread to arrive does its own work at once (no waiting when there is
no contention); threads that arrive while it works queue, and when it is done, the first of them
does the work of every queued thread in one call, and so on. Each thread gets its own result or
its own exception.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# The work over a batch: one result, or the exception that item failed with, per item in order.
Work = Callable[[Sequence[T]], Sequence["R | Exception"]]


class _Slot(Generic[T, R]):
    __slots__ = ("item", "ready", "done", "result", "error")

    def __init__(self, item: T) -> None:
        self.item = item
        self.ready = threading.Event()  # set when done, or when this slot's thread is to lead
        self.done = False
        self.result: R | None = None
        self.error: Exception | None = None


class Combiner(Generic[T, R]):
    """Runs items through ``work`` in batches of the items submitted while a batch runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Slot[T, R]] = []
        self._busy = False

    def run(self, item: T, work: Work[T, R]) -> R:
        """``item``'s result from ``work`` (run by this thread or another, over a batch that
        holds ``item``); raises the exception ``work`` gave for it, or raised for the batch.

        Every caller of one combiner passes the same ``work``: a batch runs the leading thread's.
        """
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            self._queue.append(slot)
            lead, self._busy = not self._busy, True
        if not lead:
            slot.ready.wait()
        if not slot.done:  # this thread leads the next batch
            self._lead(work)
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _lead(self, work: Work[T, R]) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        abandoned = RuntimeError("the batch this request was in was abandoned")
        outcomes: list[R | Exception] = [abandoned] * len(batch)
        try:
            outcomes = list(work([slot.item for slot in batch]))
            if len(outcomes) != len(batch):
                raise RuntimeError(f"work gave {len(outcomes)} outcomes for {len(batch)} items")
        except Exception as exc:  # the batch failed as a whole: each item fails with it
            outcomes = [exc] * len(batch)
        finally:  # even on a BaseException, no queued thread is left waiting
            for slot, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    slot.error = outcome
                else:
                    slot.result = outcome
                slot.done = True
            with self._lock:
                if self._queue:
                    self._queue[0].ready.set()  # the next batch's leader
                else:
                    self._busy = False
            for slot in batch:
                slot.ready.set()

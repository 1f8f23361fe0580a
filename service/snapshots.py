"""Resident functions: their serving snapshots, least recently used first, under a memory budget.

A :class:`Snapshots` holds what one process keeps in memory for the functions it serves. It is a
container only: :mod:`service.serving` builds the snapshots, runs the background worker and says
what a function's resident state weighs; this module keeps the order of use, the sizes, the queue
of functions the worker should refresh, and which functions are over the budget.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any


class Snapshots:
    """Thread-safe map ``function_id -> snapshot`` in order of last use, with byte sizes."""

    def __init__(self, budget_bytes: int) -> None:
        """
        Args:
            budget_bytes: memory the resident functions' state may hold together; the least
                recently used are evicted beyond it (the one in use is never evicted).
        """
        if budget_bytes < 1:
            raise ValueError(f"the snapshot budget must be positive, got {budget_bytes} bytes")
        self.budget_bytes = budget_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Any] = OrderedDict()  # None: resident, to rebuild
        self._sizes: dict[str, int] = {}
        self._build_locks: dict[str, threading.Lock] = {}
        # Functions for the worker, in order of request: True to re-read the database too.
        self._due: dict[str, bool] = {}
        self._working = False  # the worker is refreshing one it took
        # Bumped by every invalidation: a build that read the database before one is not
        # published (it could serve the version that the write replaced).
        self._generations: dict[str, int] = {}
        # The vector space each resident function's state (index, novelty, controller) was
        # derived from (service.spaces).
        self._spaces: dict[str, int | None] = {}
        self._wake = threading.Condition(self._lock)

    def get(self, function_id: str) -> Any | None:
        """The function's current snapshot (marked as just used), or None."""
        with self._lock:
            snapshot = self._entries.get(function_id)
            if snapshot is not None:
                self._entries.move_to_end(function_id)
            return snapshot

    def peek(self, function_id: str) -> Any | None:
        """The current snapshot without marking it used (for the worker)."""
        with self._lock:
            return self._entries.get(function_id)

    def __contains__(self, function_id: object) -> bool:
        """Whether the function is resident (its state is kept here, snapshot current or not)."""
        with self._lock:
            return function_id in self._entries

    def generation(self, function_id: str) -> int:
        """Take before reading what a snapshot is built from; pass to :meth:`publish`."""
        with self._lock:
            return self._generations.get(function_id, 0)

    def publish(self, function_id: str, snapshot: Any, nbytes: int, generation: int) -> bool:
        """Serve ``snapshot`` from now on; ``nbytes``: what the function's state weighs now.
        False (nothing published) if the function was invalidated since ``generation``."""
        with self._lock:
            if self._generations.get(function_id, 0) != generation:
                return False
            self._entries[function_id] = snapshot
            self._entries.move_to_end(function_id)
            self._sizes[function_id] = nbytes
            return True

    def resize(self, function_id: str, nbytes: int) -> None:
        with self._lock:
            if function_id in self._entries:
                self._sizes[function_id] = nbytes

    def invalidate(self, function_id: str) -> None:
        """The function's snapshot is out of date (a write in this process): the next use builds
        a new one from the state kept (nothing is evicted), and the worker is asked to rebuild it
        with the refits the write made due (a new head's novelty model)."""
        with self._lock:
            self._generations[function_id] = self._generations.get(function_id, 0) + 1
            if self._entries.get(function_id) is not None:
                self._entries[function_id] = None
            if function_id in self._entries:
                self._due[function_id] = True
                self._wake.notify()

    def moved(self, function_id: str, space: int | None) -> bool:
        """Record that the function's resident state is derived from vectors of ``space`` from
        now on; whether it was derived from another space until now (the caller drops it)."""
        with self._lock:
            before = self._spaces.get(function_id, space)
            self._spaces[function_id] = space
            return before != space

    def remove(self, function_id: str) -> bool:
        """Forget the function (evicted or deleted); False if it was not resident."""
        with self._lock:
            self._spaces.pop(function_id, None)
            self._sizes.pop(function_id, None)
            self._due.pop(function_id, None)
            return self._entries.pop(function_id, "absent") != "absent"

    def build_lock(self, function_id: str) -> threading.Lock:
        """Serialises the builds of one function's snapshot."""
        with self._lock:
            return self._build_locks.setdefault(function_id, threading.Lock())

    def resident(self) -> list[str]:
        """Resident function ids, least recently used first."""
        with self._lock:
            return list(self._entries)

    def total_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def over_budget(self, keep: Iterable[str] = ()) -> list[str]:
        """Least recently used functions to evict, oldest first, so the rest fit the budget
        (never those in ``keep``, nor the most recently used one)."""
        spared = set(keep)
        with self._lock:
            total = sum(self._sizes.values())
            order = list(self._entries)[:-1]
            evict = []
            for function_id in order:
                if total <= self.budget_bytes:
                    break
                if function_id not in spared:
                    evict.append(function_id)
                    total -= self._sizes.get(function_id, 0)
            return evict

    def request(self, function_id: str, *, reread: bool = False) -> None:
        """Ask the worker to do the function's refits due; ``reread``: to build its snapshot
        from the database too (another process changed it, or it could not be loaded)."""
        with self._lock:
            self._due[function_id] = self._due.get(function_id, False) or reread
            self._wake.notify()

    def next_due(self, timeout: float, stopping: Callable[[], bool]) -> tuple[str, bool] | None:
        """The next function to refresh and whether to re-read it, waiting up to ``timeout``
        seconds; None on timeout."""
        with self._lock:
            if not self._due and not stopping():
                self._wake.wait(timeout)
            if not self._due:
                return None
            function_id = next(iter(self._due))
            reread = self._due.pop(function_id)
            self._working = True
            return function_id, reread

    def done(self) -> None:
        """The worker finished the function :meth:`next_due` gave it."""
        with self._lock:
            self._working = False

    def idle(self) -> bool:
        """Nothing asked for and nothing being refreshed."""
        with self._lock:
            return not self._due and not self._working

    def wake(self) -> None:
        with self._lock:
            self._wake.notify_all()

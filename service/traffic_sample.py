"""Each function's recent invoke traffic, sampled into the database for semi-supervised training.

Invokes hand the distinct inputs that joined a function's traffic window (repeats of one it holds
are left out, :class:`capture.traffic.RecentTraffic`) to :meth:`TrafficSample.offer`, which keeps
them in memory: a uniform sample (a reservoir) of at most ``flush_rows`` per function and vector
space of what arrived since the last flush, so the buffer stays bounded however fast the traffic
is. The serving worker calls :meth:`TrafficSample.flush` every ``traffic_flush_seconds`` and the
runtime once more when it closes: one transaction per buffer writes it into the function's ring
(:func:`store.write_traffic`), shared by every replica and read back by training
(:meth:`TrafficSample.read`). No invoke waits for the database. A buffer of a space the function
has left since (its vectors were re-embedded) is refused by the database and dropped.

A crash loses the buffer since the last flush. That is accepted: this is a sample of the traffic,
not data anyone was told is stored; the next inputs refill it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.engine import Engine

from store import read_traffic, session_scope, write_traffic

log = logging.getLogger("winnow.traffic")


@dataclass
class _Reservoir:
    """A uniform sample of at most ``capacity`` of the rows offered (Vitter's algorithm R)."""

    capacity: int
    rows: list[np.ndarray] = field(default_factory=list)
    seen: int = 0

    def offer(self, row: np.ndarray, rng: np.random.Generator) -> None:
        self.seen += 1
        if len(self.rows) < self.capacity:
            self.rows.append(row)
            return
        slot = int(rng.integers(self.seen))
        if slot < self.capacity:
            self.rows[slot] = row


class TrafficSample:
    """Buffers of new invoke vectors per function and space, flushed in batches into the
    database rings."""

    def __init__(
        self,
        engine: Engine,
        *,
        size: int,
        flush_rows: int | None = None,
        seed: int | None = None,
    ) -> None:
        """
        Args:
            engine: the database every replica shares.
            size: slots in each function's ring (0: no traffic is kept, and none is read).
            flush_rows: most vectors one flush writes per function (default ``size // 10``, at
                least 1): a uniform sample of the buffer when more arrived.
            seed: seeds the buffers' sampling (None: nondeterministic).
        """
        if size < 0:
            raise ValueError(f"traffic_sample_size must be 0 (off) or positive, not {size}")
        self.size = size
        self.flush_rows = max(1, min(size, flush_rows or size // 10))
        self._engine = engine
        self._rng = np.random.default_rng(seed)
        self._buffers: dict[tuple[str, int | None], _Reservoir] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.size > 0

    def offer(self, function_id: Hashable, space: Hashable, rows: np.ndarray) -> None:
        """Buffer inputs of the function, embedded in ``space`` (see ``Function.vector_space``),
        that joined its traffic window (an invoke's thread)."""
        if not self.enabled:
            return
        if space is not None and not isinstance(space, int):
            raise TypeError(f"a vector space is a model version or None, not {space!r}")
        key = (str(function_id), space)
        with self._lock:
            buffer = self._buffers.get(key)
            if buffer is None:
                buffer = self._buffers[key] = _Reservoir(self.flush_rows)
            for row in np.asarray(rows, dtype=np.float32):
                buffer.offer(row, self._rng)

    def pending(self, function_id: str) -> int:
        """Vectors buffered for the function, in any space (at most what its next flush writes)."""
        with self._lock:
            return sum(len(b.rows) for (fid, _), b in self._buffers.items() if fid == function_id)

    def drop(self, function_id: str) -> None:
        """Forget the function's buffers (it was deleted)."""
        with self._lock:
            for key in [key for key in self._buffers if key[0] == function_id]:
                del self._buffers[key]

    def flush(self) -> int:
        """Write every buffer into its function's ring, one transaction per buffer; returns
        the vectors written. A buffer whose write fails or is refused is lost (logged)."""
        with self._lock:
            buffers, self._buffers = self._buffers, {}
        written = 0
        started = time.perf_counter()
        for (function_id, space), buffer in buffers.items():
            try:
                with session_scope(self._engine) as session:
                    batch = write_traffic(
                        session,
                        function_id=function_id,
                        vectors=np.stack(buffer.rows),
                        size=self.size,
                        space=space,
                    )
            except Exception:
                log.exception("function %s: writing its traffic sample failed", function_id)
                continue
            if batch == 0:
                log.debug(
                    "function %s: %d traffic vector(s) dropped: gone, or of space %s it left",
                    function_id,
                    len(buffer.rows),
                    space,
                )
            written += batch
        if buffers:
            log.debug(
                "traffic sample: %d vector(s) of %d buffer(s) written in %.1f ms",
                written,
                len(buffers),
                (time.perf_counter() - started) * 1000,
            )
        return written

    def read(self, function_id: str) -> np.ndarray | None:
        """The function's traffic sample as stored (``(m, dim)`` rows); None if it has none."""
        if not self.enabled:
            return None
        with session_scope(self._engine) as session:
            return read_traffic(session, function_id=function_id)

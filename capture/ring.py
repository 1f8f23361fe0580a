"""The last rows of a stream, in memory that grows with what was seen."""

from __future__ import annotations

import numpy as np

# Rows a ring holds before its first growth.
INITIAL_ROWS = 64


class RowRing:
    """The last ``size`` rows appended (float32, ``dim`` wide), in order of arrival modulo
    ``size``: a ring buffer whose array doubles as it fills, so a window that a function's traffic
    never fills (most of them, on a service with many functions) holds only what it saw instead
    of ``size`` rows from the start. Not thread-safe: the owner locks."""

    def __init__(self, size: int, dim: int) -> None:
        if size < 1 or dim < 1:
            raise ValueError(f"size and dim must be positive, got {size} and {dim}")
        self.size, self.dim = size, dim
        self.seen = 0  # rows appended so far
        self._rows = np.empty((min(INITIAL_ROWS, size), dim), dtype=np.float32)

    @property
    def filled(self) -> int:
        return min(self.seen, self.size)

    def rows(self) -> np.ndarray:
        """The rows held (a view: copy it to keep it past the next append)."""
        return self._rows[: self.filled]

    def append(self, row: np.ndarray) -> None:
        if self.seen == self._rows.shape[0] < self.size:
            grown = np.empty((min(self.size, 2 * self.seen), self.dim), dtype=np.float32)
            grown[: self.seen] = self._rows
            self._rows = grown
        self._rows[self.seen % self.size] = row
        self.seen += 1

    def nbytes(self) -> int:
        return int(self._rows.nbytes)

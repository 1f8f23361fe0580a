"""An adaptive capture threshold: a running quantile of recent informativeness scores.

Capturing inputs whose score exceeds the ``1 - target_rate`` quantile of recent traffic makes the
capture rate track ``target_rate`` whatever the score distribution - a confident head and a
confused one both send about the same share of their traffic to review.
"""

from __future__ import annotations

import numpy as np

# Scores needed before the quantile is trusted over the fixed initial threshold.
MIN_HISTORY = 50


class AdaptiveThreshold:
    """Ring buffer of the last ``window`` scores and their ``quantile``; not thread-safe."""

    def __init__(self, *, window: int, quantile: float, initial: float) -> None:
        """Start with no history.

        Args:
            window: how many recent scores to keep.
            quantile: in [0, 1], e.g. ``1 - target_rate``.
            initial: threshold returned until ``min(window, MIN_HISTORY)`` scores were observed.
        """
        self._scores = np.zeros(window, dtype=np.float64)
        self._quantile = quantile
        self._initial = initial
        self._count = 0
        self._min_history = min(window, MIN_HISTORY)

    @property
    def observed(self) -> int:
        """Scores currently in the window."""
        return min(self._count, self._scores.shape[0])

    def current(self) -> float:
        """The threshold an input must exceed right now."""
        if self._count < self._min_history:
            return self._initial
        # The order statistic just below the quantile (np.partition is ~10x cheaper than
        # np.quantile at this size, and interpolation buys nothing for a threshold).
        scores = self._scores[: self.observed]
        rank = int(np.floor(self._quantile * (scores.shape[0] - 1)))
        return float(np.partition(scores, rank)[rank])

    def observe(self, score: float) -> None:
        """Add a score, evicting the oldest once the window is full."""
        self._scores[self._count % self._scores.shape[0]] = score
        self._count += 1

    def recent_scores(self) -> np.ndarray:
        """Copy of the scores in the window (oldest first once it has wrapped)."""
        if self._count <= self._scores.shape[0]:
            return self._scores[: self._count].copy()
        split = self._count % self._scores.shape[0]
        return np.concatenate([self._scores[split:], self._scores[:split]])

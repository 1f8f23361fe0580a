"""A function's recent traffic: the window novelty is measured relative to.

:class:`RecentTraffic` keeps the last ``size`` inputs a function was invoked with (a ring buffer
in this process's memory: a restart or another replica starts empty and novelty falls back to the
plain distance until ``capture.novelty.MIN_TRAFFIC`` inputs have been seen). Each input is scored
against the window *before* it joins it, so an input never finds itself, and an input already in
the window (cosine similarity >= ``DUPLICATE``: a retried or repeated image) does not join it
again, so a burst of one image does not make it look like a new region. The model's calibration
against the window is redone whenever the window has moved on by a tenth of its fill (at most
every ``recalibrate_every`` inputs) or the model changed: by the input that finds it due, or
with ``recalibrate_inline=False`` by the owner off the request path
(:meth:`RecentTraffic.calibration_due`, :meth:`RecentTraffic.recalibrate`), inputs being scored
by the calibration in force meanwhile. An owner that keeps a sample of the traffic elsewhere
passes ``on_join``: it is handed the inputs that joined the window (repeats left out).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from capture.novelty import NoveltyModel, TrafficCalibration
from capture.ring import RowRing
from capture.scores import unit_rows

# Cosine similarity at which an input counts as one the window already holds.
DUPLICATE = 0.999


class RecentTraffic:
    """The last ``size`` inputs of one function, and novelty scored relative to them."""

    def __init__(
        self,
        dim: int,
        *,
        size: int = 2000,
        recalibrate_every: int = 200,
        recalibrate_inline: bool = True,
        on_join: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        """
        Args:
            dim: vector dimension.
            size: inputs kept (memory: ``size * dim`` float32).
            recalibrate_every: most inputs between two calibrations of a model to the window.
            recalibrate_inline: the input that finds a calibration due computes it (False: the
                owner calls :meth:`recalibrate` when :meth:`calibration_due`).
            on_join: called with the ``(k, dim)`` unit rows that joined the window, after each
                add or score that added any (under the window's lock: it must be quick).
        """
        self.dim = dim
        self._window = RowRing(size, dim)
        self._recalibrate_every = recalibrate_every
        self._recalibrate_inline = recalibrate_inline
        self._on_join = on_join
        self._calibrated: tuple[NoveltyModel, int, TrafficCalibration | None] | None = None
        self._lock = threading.Lock()

    @property
    def seen(self) -> int:
        """Inputs added since the window started (repeats of one it holds not counted)."""
        return self._window.seen

    def filled(self) -> int:
        return self._window.filled

    def nbytes(self) -> int:
        """Memory the window holds (it grows as it fills)."""
        return self._window.nbytes()

    def calibration_due(self, model: NoveltyModel) -> bool:
        """``model`` has no calibration to the window, or one the window has moved on from."""
        with self._lock:
            return self._due(model, self.filled())

    def recalibrate(self, model: NoveltyModel) -> None:
        """Calibrate ``model`` to a copy of the window, then score by it (the window is not
        locked while the calibration is computed)."""
        with self._lock:
            window, seen = self._window.rows().copy(), self._window.seen
        calibration = model.calibrate_to(window)
        with self._lock:
            self._calibrated = (model, seen, calibration)

    def score(self, model: NoveltyModel, vectors: ArrayLike) -> np.ndarray:
        """``model``'s novelty of each input relative to the window, which they then join.

        Args:
            model: the function's fitted novelty model (same dimension).
            vectors: shape ``(n, dim)``; scored together against the window as it was.
        """
        matrix = unit_rows(vectors).astype(np.float32)
        with self._lock:
            window = self._window.rows()
            similarities = matrix @ window.T  # once: for the score and for the repeat check
            calibration = self._calibration(model, window)
            scores = model.score(matrix, window, calibration, traffic_similarities=similarities)
            self._add(matrix, similarities)
        return scores

    def add(self, vectors: ArrayLike) -> None:
        """Add inputs that were not scored (no model yet)."""
        matrix = unit_rows(vectors).astype(np.float32)
        with self._lock:
            self._add(matrix)

    def _add(self, matrix: np.ndarray, similarities: np.ndarray | None = None) -> None:
        """Append the rows the window does not hold yet (``similarities``: ``matrix`` against
        the window as it was, if the caller computed it; rows of this batch added meanwhile are
        compared here)."""
        if similarities is None:
            similarities = matrix @ self._window.rows().T
        added: list[np.ndarray] = []
        for row, known in zip(matrix, similarities, strict=True):
            if known.shape[0] and float(np.max(known)) >= DUPLICATE:
                continue
            if added and float(np.max(np.stack(added) @ row)) >= DUPLICATE:
                continue
            self._window.append(row)
            added.append(row)
        if added and self._on_join is not None:
            self._on_join(np.stack(added))

    def _due(self, model: NoveltyModel, filled: int) -> bool:
        if self._calibrated is None or self._calibrated[0] is not model:
            return True
        step = min(self._recalibrate_every, max(1, filled // 10))
        return self._window.seen - self._calibrated[1] >= step

    def _calibration(self, model: NoveltyModel, window: np.ndarray) -> TrafficCalibration | None:
        if self._due(model, window.shape[0]):
            if not self._recalibrate_inline:  # the owner recalibrates; score by what there is
                current = self._calibrated
                return current[2] if current is not None and current[0] is model else None
            self._calibrated = (model, self._window.seen, model.calibrate_to(window))
        assert self._calibrated is not None
        return self._calibrated[2]

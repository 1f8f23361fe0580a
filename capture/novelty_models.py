"""One :class:`NoveltyModel` per function, kept in step with its labelled data, and the
function's :class:`capture.traffic.RecentTraffic` its novelty is measured relative to.

A model is fitted from the function's labelled samples and tagged with the revision of that data
it saw (the caller's counter of annotations). When the revision moves on, the next call of
:meth:`NoveltyModels.current` refits it in the caller's thread (the service calls it from its
serving worker, never from an invoke, which reads :meth:`NoveltyModels.peek`). Fitting takes
seconds for thousands of samples, so it never runs twice at once for a function, and while
reviewers annotate steadily a function is refitted at most once per ``min_refit_seconds`` (unless
:meth:`NoveltyModels.invalidate` asks for one, or the last fit had too little data).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import partial

import numpy as np

from capture.novelty import NoveltyModel
from capture.traffic import RecentTraffic

log = logging.getLogger("winnow.capture")

# Builds a function's model from its labelled data; None when there is too little of it.
ModelBuilder = Callable[[], NoveltyModel | None]


@dataclass(frozen=True)
class FittedNovelty:
    """A function's model (None: too little labelled data) and the revision it was fitted at."""

    model: NoveltyModel | None
    revision: int
    # When the fit finished (the registry's clock); -inf forces a refit at the next use.
    fitted_at: float


class NoveltyModels:
    """Thread-safe map ``function_id -> FittedNovelty`` with refits on demand."""

    def __init__(
        self,
        *,
        min_refit_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        recalibrate_inline: bool = True,
        on_join: Callable[[Hashable, Hashable, np.ndarray], None] | None = None,
    ) -> None:
        """
        Args:
            recalibrate_inline: passed to each function's :class:`RecentTraffic`.
            on_join: called with a function's key, its window's ``tag`` and the inputs that
                joined the window (see :class:`RecentTraffic`).
            min_refit_seconds: least time between two refits of a function's model.
            clock: seconds, injected so tests can move time.
        """
        self._min_refit = min_refit_seconds
        self._clock = clock
        self._recalibrate_inline = recalibrate_inline
        self._on_join = on_join
        self._fitted: dict[Hashable, FittedNovelty] = {}
        self._fitting: set[Hashable] = set()
        self._traffic: dict[Hashable, tuple[Hashable, RecentTraffic]] = {}
        self._lock = threading.Lock()

    def current(
        self, function_id: Hashable, revision: int, build: ModelBuilder
    ) -> NoveltyModel | None:
        """The function's model, refitted (see the module notes) if fitted at another revision.

        Args:
            function_id: the function's key.
            revision: the function's labelled-data revision now.
            build: fits a model from the function's labelled data now.
        """
        with self._lock:
            fitted = self._fitted.get(function_id)
            stale = fitted is None or (
                fitted.revision != revision
                # too little data before: fit as soon as there may be enough
                and (fitted.model is None or self._clock() - fitted.fitted_at >= self._min_refit)
            )
            start = stale and function_id not in self._fitting
            if start:
                self._fitting.add(function_id)
        if start:
            self._fit(function_id, revision, build)
        with self._lock:
            fitted = self._fitted.get(function_id)
        return fitted.model if fitted is not None else None

    def peek(self, function_id: Hashable) -> FittedNovelty | None:
        """The function's last fitted model and its revision, fitting nothing."""
        with self._lock:
            return self._fitted.get(function_id)

    def window(self, function_id: Hashable) -> RecentTraffic | None:
        """The function's traffic window if it has one (creating none)."""
        with self._lock:
            held = self._traffic.get(function_id)
        return held[1] if held is not None else None

    def nbytes(self, function_id: Hashable) -> int:
        """Memory the function's model and traffic window hold (approximate)."""
        with self._lock:
            fitted, traffic = self._fitted.get(function_id), self._traffic.get(function_id)
        held = traffic[1].nbytes() if traffic is not None else 0
        return held + (fitted.model.nbytes() if fitted is not None and fitted.model else 0)

    def invalidate(self, function_id: Hashable) -> None:
        """Refit at the next use whatever the revision (labels changed outside annotations)."""
        with self._lock:
            fitted = self._fitted.get(function_id)
            if fitted is not None:
                self._fitted[function_id] = FittedNovelty(fitted.model, -1, float("-inf"))

    def traffic(self, function_id: Hashable, dim: int, tag: Hashable = None) -> RecentTraffic:
        """The function's recent traffic (a new, empty window when ``dim`` or ``tag`` changed).

        Args:
            function_id: the function's key.
            dim: the vectors' dimension.
            tag: what the vectors' space is; a window never mixes two.
        """
        with self._lock:
            held = self._traffic.get(function_id)
            if held is not None and held[0] == tag and held[1].dim == dim:
                return held[1]
            on_join = self._on_join
            traffic = RecentTraffic(
                dim,
                recalibrate_inline=self._recalibrate_inline,
                on_join=None if on_join is None else partial(on_join, function_id, tag),
            )
            self._traffic[function_id] = (tag, traffic)
            return traffic

    def drop(self, function_id: Hashable) -> None:
        with self._lock:
            self._fitted.pop(function_id, None)
            self._traffic.pop(function_id, None)

    def _fit(self, function_id: Hashable, revision: int, build: ModelBuilder) -> None:
        try:
            model = build()
            with self._lock:
                self._fitted[function_id] = FittedNovelty(model, revision, self._clock())
        except Exception:
            log.exception(
                "fitting the novelty model of %s failed; keeping the old one", function_id
            )
        finally:
            with self._lock:
                self._fitting.discard(function_id)

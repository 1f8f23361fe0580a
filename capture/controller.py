"""Per-function capture decisions: is this input worth a human's time?

Order of checks in :meth:`CaptureController.decide`:

1. score the input: uncertainty (the policy's strategy), kNN novelty against labelled and pending
   items, their weighted mean, times a coverage weight that favours regions of traffic with fewer
   captures so far (see :mod:`capture.coverage`), plus a boost when the predicted class is rare;
2. near-duplicates of a labelled or pending item are never captured;
3. a ``random_rate`` slice is captured whatever its score (reason ``"random"``): an unbiased
   sample for measuring the model on real traffic;
4. otherwise the score must exceed an adaptive threshold (see :mod:`capture.threshold`);
5. hard per-hour / per-day budgets apply to every capture.

Named rules of the policy (:mod:`capture.rules`) capture inputs close to their examples (reason
``"rule:<name>"``) after the random slice and before the threshold; then an input whose
calibrated novelty (:mod:`capture.novelty`, passed in by the caller) passes the policy's
``novelty_threshold`` is captured with reason ``"novel"``, whatever its score. Before any head
exists, :meth:`CaptureController.decide_cold_start` replaces steps 1 and 4 by typicality and
coverage of the traffic (:mod:`capture.cold_start`, reason ``"cold_start"``).

The controller never writes to the database. Protocol for a caller::

    decision = controller.decide(proba, labels, vector, index, label_counts)
    if decision.captured:
        try:
            item_id = persist(...)              # the caller's write
        except Exception:
            controller.rollback(decision)      # the slot goes back to the budget
            raise
        controller.commit(decision)            # now it counts against the budget
        add_pending(index, item_id, vector)    # so the next near-duplicate is suppressed
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from capture.budget import CaptureBudget, FullBudget
from capture.cold_start import ColdStartSelector
from capture.coverage import TrafficClusters, weighted_score
from capture.decision import CaptureDecision, CaptureReason, SkipReason
from capture.errors import InvalidArray
from capture.index import VectorIndex
from capture.policy import CapturePolicy
from capture.rules import RuleMatcher
from capture.scores import informativeness, knn_novelty
from capture.strategies import get_strategy
from capture.threshold import AdaptiveThreshold


def add_pending(index: VectorIndex, item_id: int, vector: ArrayLike) -> None:
    """Store a captured input's vector as ``"pending"`` so near-duplicates of it are skipped.

    Args:
        index: the function's index.
        item_id: the persisted queue item's id.
        vector: the input's embedding, shape ``(dim,)``.
    """
    index.add([item_id], np.asarray(vector, dtype=np.float32).reshape(1, -1), "pending")


class CaptureController:
    """Capture decisions and budget for one function; safe to call from many threads."""

    def __init__(
        self,
        policy: CapturePolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rng: np.random.Generator | None = None,
        reservation_ttl: float = 600.0,
        refit_inline: bool = True,
    ) -> None:
        """Create a controller with empty history.

        Args:
            policy: the function's settings (defaults if None).
            clock: seconds since an epoch; injected so tests can move time.
            rng: source of the random slice; pass a seeded generator for reproducibility.
            reservation_ttl: seconds before an unsettled capture stops holding budget.
            refit_inline: the input that makes a cold-start refit due pays for it; False: the
                owner watches :attr:`cold_start_refit_due` and calls :meth:`refit_cold_start`
                off the request path.
        """
        self._lock = threading.Lock()
        self._clock = clock
        self._rng = rng if rng is not None else np.random.default_rng()
        self._policy = policy or CapturePolicy()
        self._strategy = get_strategy(self._policy.strategy)
        self._threshold = self._new_threshold(self._policy)
        self._clusters: TrafficClusters | None = None
        self._rules = RuleMatcher(self._policy.rules)
        self._cold_start: ColdStartSelector | None = None
        self._refit_inline = refit_inline
        self._budget = CaptureBudget(
            max_per_hour=self._policy.max_per_hour,
            max_per_day=self._policy.max_per_day,
            reservation_ttl=reservation_ttl,
        )

    @property
    def policy(self) -> CapturePolicy:
        return self._policy

    def set_committed_captures(self, times: Iterable[float]) -> None:
        """Count exactly the captures persisted at ``times`` against the hourly and daily
        budgets (on this controller's clock; the creation times of the function's queue items,
        whichever process wrote them), so a restart does not hand out a fresh budget."""
        with self._lock:
            self._budget.set_committed(times)

    def confirm(self, decision: CaptureDecision, committed: Iterable[float]) -> FullBudget | None:
        """Check a capture against the captures persisted so far before persisting it.

        Several processes serving one function each decide on their own traffic; the shared
        queue is what holds the budget. Call this with that queue's capture times, read under a
        lock that keeps other processes from adding to it until this capture is written. If a
        window is full the capture is settled as if rolled back and the full window returned;
        otherwise it stays reserved, to :meth:`commit` or :meth:`rollback` as usual.

        Args:
            decision: a captured decision from :meth:`decide`, not settled yet.
            committed: times of every persisted capture of the function in the last day.
        """
        if decision.reservation is None:
            raise ValueError("only a captured, unsettled decision can be confirmed")
        with self._lock:
            self._budget.set_committed(committed)
            full = self._budget.exhausted(self._clock(), excluding=decision.reservation)
        if full is not None:
            self.rollback(decision)
        return full

    def update_policy(self, policy: CapturePolicy) -> None:
        """Switch settings, keeping recent scores and budget usage."""
        with self._lock:
            recent = self._threshold.recent_scores()
            self._policy = policy
            self._rules = RuleMatcher(policy.rules)
            self._strategy = get_strategy(policy.strategy)
            self._threshold = self._new_threshold(policy)
            for score in recent[-policy.window :]:
                self._threshold.observe(float(score))
            self._budget.max_per_hour = policy.max_per_hour
            self._budget.max_per_day = policy.max_per_day
            if self._clusters is not None and (
                self._clusters.n_clusters != policy.coverage_clusters
            ):
                self._clusters = None

    def decide(
        self,
        proba: ArrayLike,
        labels: Sequence[str],
        vector: ArrayLike,
        index: VectorIndex,
        label_counts: Mapping[str, int],
        *,
        calibrated_novelty: float | None = None,
    ) -> CaptureDecision:
        """Decide whether to capture one input (see the module notes for the checks).

        Args:
            proba: the deployed head's class probabilities, shape ``(k,)``.
            labels: class names aligned with ``proba``.
            vector: the input's L2-normalised embedding, shape ``(dim,)``.
            index: the function's index of labelled and pending vectors (searched, not changed).
            label_counts: labelled samples per class name (missing names count as 0).
            calibrated_novelty: the input's novelty from the function's
                :class:`capture.novelty.NoveltyModel`; above the policy's ``novelty_threshold``
                the input is captured with reason ``"novel"`` (after duplicates, the random
                slice and rules, whatever its score; budgets apply).

        Returns:
            The decision; when ``captured``, settle it with :meth:`commit` or :meth:`rollback`.
        """
        probabilities = np.asarray(proba, dtype=np.float64)
        if probabilities.ndim != 1 or probabilities.shape[0] != len(labels) or not len(labels):
            raise InvalidArray(
                f"proba must be shaped (k,) with one entry per label; got shape "
                f"{probabilities.shape} for {len(labels)} labels"
            )
        policy, strategy = self._policy, self._strategy
        uncertainty = float(strategy.uncertainty(probabilities[None, :])[0])
        query, novelty, nearest = self._neighbours(vector, index)
        base_score = float(
            informativeness([uncertainty], [novelty], novelty_weight=policy.novelty_weight)[0]
        )
        predicted = labels[int(np.argmax(probabilities))]
        is_rare = label_counts.get(predicted, 0) < policy.rare_class_min_samples

        with self._lock:
            now = self._clock()
            region, weight = self._coverage(query[0], policy)
            balanced = weighted_score(base_score, weight)
            # moving the score part of the way to 1 (rather than adding and capping) never ties
            # many inputs at 1, where the quantile threshold would let none of them through
            boost = policy.rare_class_boost * (1.0 - balanced) if is_rare else 0.0
            score = balanced + boost
            threshold = self._threshold.current()
            self._threshold.observe(score)
            reason, skipped = self._checked_first(query, nearest)
            is_novel = (
                calibrated_novelty is not None and calibrated_novelty > policy.novelty_threshold
            )
            if reason is None and skipped is None:
                if is_novel:
                    reason = "novel"
                elif score > threshold or score >= 1.0:  # a maximal score is never below the bar
                    reason = _reason(uncertainty, base_score, balanced, threshold)
                else:
                    skipped = "below_threshold"
            reason, skipped, reservation = self._reserve(reason, skipped, region, now)
        return CaptureDecision(
            captured=reason is not None,
            reason=reason,
            score=score,
            uncertainty=uncertainty,
            novelty=novelty,
            nearest_similarity=nearest,
            threshold=threshold,
            skipped_because=skipped,
            predicted_label=predicted,
            region=region,
            coverage_weight=weight,
            calibrated_novelty=calibrated_novelty,
            is_novel=is_novel,
            reservation=reservation,
        )

    def decide_cold_start(self, vector: ArrayLike, index: VectorIndex) -> CaptureDecision:
        """Decide whether to capture one input served without any head (no label to give).

        Duplicates, the random slice, rules and budgets apply as in :meth:`decide`; in place of
        the score and threshold, an input typical of a region of traffic that no labelled or
        queued item covers yet is captured (reason ``"cold_start"``, see
        :mod:`capture.cold_start`). ``score`` is the input's typicality percentile in recent
        traffic; ``uncertainty`` is 1 (nothing is known).

        Args:
            vector: the input's L2-normalised embedding, shape ``(dim,)``.
            index: the function's index of labelled and pending vectors (searched, not changed).
        """
        query, novelty, nearest = self._neighbours(vector, index)
        with self._lock:
            now = self._clock()
            region, weight = self._coverage(query[0], self._policy)
            if self._cold_start is None or self._cold_start.dim != query.shape[1]:
                self._cold_start = ColdStartSelector(
                    query.shape[1], refit_inline=self._refit_inline
                )
            judged = self._cold_start.judge(query[0], index)
            reason, skipped = self._checked_first(query, nearest)
            if reason is None and skipped is None:
                if judged.wanted:
                    reason = "cold_start"
                else:
                    skipped = "warming_up" if judged.warming_up else "below_threshold"
            reason, skipped, reservation = self._reserve(reason, skipped, region, now)
            if reason == "cold_start":
                self._cold_start.captured(judged.region)
        return CaptureDecision(
            captured=reason is not None,
            reason=reason,
            score=judged.typicality,
            uncertainty=1.0,
            novelty=novelty,
            nearest_similarity=nearest,
            threshold=1.0,
            skipped_because=skipped,
            predicted_label=None,
            region=region,
            coverage_weight=weight,
            reservation=reservation,
        )

    @property
    def cold_start_refit_due(self) -> bool:
        """The cold-start clustering should be refitted (see :meth:`refit_cold_start`)."""
        with self._lock:
            return self._cold_start is not None and self._cold_start.refit_due

    def refit_cold_start(self, index: VectorIndex) -> bool:
        """Refit the cold-start clustering on a copy of its reservoir, without holding the lock
        that decisions take meanwhile, then switch to it; False if none was due."""
        with self._lock:
            selector = self._cold_start
            if selector is None or not selector.refit_due:
                return False
            members, seen = selector.members(), selector.seen
        fitted = selector.fit(members, seen, index)
        with self._lock:
            if self._cold_start is selector:
                selector.install(fitted)
        return True

    def nbytes(self) -> int:
        """Memory held by the cold-start reservoir and the coverage clusters (approximate)."""
        with self._lock:
            held = self._cold_start.nbytes() if self._cold_start is not None else 0
            return held + (self._clusters.nbytes() if self._clusters is not None else 0)

    def _neighbours(
        self, vector: ArrayLike, index: VectorIndex
    ) -> tuple[np.ndarray, float, float | None]:
        """The input as a ``(1, dim)`` query, its kNN novelty against the index and its nearest
        neighbour's similarity (None with an empty index)."""
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        similarities = index.search(query, self._policy.knn_k).similarities
        novelty = float(knn_novelty(1.0 - similarities)[0])
        nearest = None if np.isnan(similarities[0, 0]) else float(similarities[0, 0])
        return query, novelty, nearest

    def _checked_first(
        self, query: np.ndarray, nearest: float | None
    ) -> tuple[CaptureReason | str | None, SkipReason | None]:
        """What every decision checks first, in order (call with the lock held): a
        near-duplicate is skipped, the random slice and then rules capture. ``(None, None)``:
        none of them settled it."""
        policy = self._policy
        in_random_slice = bool(self._rng.random() < policy.random_rate)  # drawn every time
        rule = self._rules.match(query[0])
        if nearest is not None and nearest >= policy.duplicate_similarity:
            return None, "duplicate"
        if in_random_slice:
            return "random", None
        if rule is not None:
            return f"rule:{rule}", None
        return None, None

    def _reserve(
        self,
        reason: CaptureReason | str | None,
        skipped: SkipReason | None,
        region: int | None,
        now: float,
    ) -> tuple[CaptureReason | str | None, SkipReason | None, int | None]:
        """Hold a budget slot for a capture (call with the lock held): the reason, skip reason
        and reservation once the budgets are applied."""
        if reason is None:
            return None, skipped, None
        budget_full = self._budget.exhausted(now)
        if budget_full is not None:
            return None, budget_full, None
        if region is not None and self._clusters is not None:
            self._clusters.count_capture(region, self._policy.coverage_memory)
        return reason, None, self._budget.reserve(now)

    def commit(self, decision: CaptureDecision) -> bool:
        """Count a persisted capture against the budgets; False if nothing to settle."""
        if decision.reservation is None:
            return False
        with self._lock:
            return self._budget.commit(decision.reservation, self._clock())

    def rollback(self, decision: CaptureDecision) -> bool:
        """Return an unpersisted capture's budget slot; False if nothing to settle."""
        if decision.reservation is None:
            return False
        with self._lock:
            released = self._budget.release(decision.reservation)
            if released and decision.region is not None and self._clusters is not None:
                self._clusters.uncount_capture(decision.region)
            return released

    def status(self) -> dict[str, Any]:
        """Current threshold and budget usage, for dashboards and debugging."""
        with self._lock:
            hour, day = self._budget.used(self._clock())
            return {
                "threshold": self._threshold.current(),
                "scores_observed": self._threshold.observed,
                "captures_last_hour": hour,
                "captures_last_day": day,
                "max_per_hour": self._policy.max_per_hour,
                "max_per_day": self._policy.max_per_day,
            }

    def _coverage(self, vector: np.ndarray, policy: CapturePolicy) -> tuple[int | None, float]:
        """The input's traffic region and its coverage weight (call with the lock held)."""
        if policy.coverage_clusters == 0:
            return None, 1.0
        if self._clusters is None or self._clusters.dim != vector.shape[0]:
            self._clusters = TrafficClusters(policy.coverage_clusters, vector.shape[0])
        region = self._clusters.assign(vector)
        return region, self._clusters.weight(region, policy.coverage_strength)

    @staticmethod
    def _new_threshold(policy: CapturePolicy) -> AdaptiveThreshold:
        return AdaptiveThreshold(
            window=policy.window,
            quantile=1.0 - policy.target_rate,
            initial=policy.initial_threshold,
        )


def _reason(uncertainty: float, base: float, balanced: float, threshold: float) -> CaptureReason:
    """Name the first part of the score that lifts it over ``threshold``."""
    if balanced <= threshold:
        return "rare_class"
    if base <= threshold:
        return "coverage"
    return "uncertain" if uncertainty > threshold else "novel"

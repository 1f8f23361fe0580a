"""Simulated production for invoke capture: a stream, a review queue, an oracle and retraining.

One run takes a pool of embedded images as traffic (in a seeded random order) and replays what
winnow does in production, with the service's own parts:

* every input is scored by the deployed head and goes through
  :meth:`capture.CaptureController.decide` against the function's :class:`capture.VectorIndex`,
  one at a time; a capture is committed and added as ``"pending"`` with
  :func:`capture.add_pending`, exactly like ``api/services/capture.py``;
* the oracle (the true label) annotates the queue in rounds: a round ends once the queue holds
  enough items, they become ``"labelled"`` in the index and in the label counts;
* the head is retrained after every round with :func:`learner.train_head`, like the scheduler.

Cold start: with ``cold_start`` > 0 a run starts from the first ``cold_start`` inputs of its
stream labelled by hand (a random sample, the same for every strategy with the same seed),
extended one input at a time until it is trainable (two labels, one with two samples). With
``cold_start=0`` it starts with no labels at all, as the service does: until the first head,
every input goes through :meth:`capture.CaptureController.decide_cold_start` (typical inputs of
uncovered regions of traffic), and the first round's labels are those captures. Random capture is
the same stream with every input labelled in order.

Traffic: like the service, a run keeps a sample of the function's recent traffic (the last
:data:`TRAFFIC_SAMPLE` distinct inputs served, captured or not) and hands it to every training as
``unlabeled``; candidates that learn from traffic (:mod:`learner.semi_supervised`) use it, the
others ignore it.

Time is simulated: each input advances a fake clock by ``3600 / items_per_hour`` seconds, so the
policy's hourly and daily budgets apply as they would in production.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

import numpy as np

from capture import CaptureController, CapturePolicy, VectorIndex, add_pending
from learner import Candidate, TrainResult, train_head

TRAFFIC_SAMPLE = 2000
"""Distinct recent inputs the service keeps per function for training (its default)."""

# Head trained on the labelled items -> called at every checkpoint (e.g. to record accuracy);
# None when the labels so far cannot train one (a single class, possible only from cold start).
CheckpointHook = Callable[[int, TrainResult | None, np.ndarray], None]


@dataclass
class StreamLog:
    """What happened to the traffic that a deployed head served during a run."""

    # per decided input: was the head wrong, was it captured (cold start excluded)
    head_wrong: list[bool] = field(default_factory=list)
    captured: list[bool] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    inputs_seen: int = 0

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        wrong = np.asarray(self.head_wrong, dtype=bool)
        taken = np.asarray(self.captured, dtype=bool)
        return {
            "inputs_seen": self.inputs_seen,
            "capture_rate": float(taken.mean()) if taken.size else 0.0,
            "head_error_rate": float(wrong.mean()) if wrong.size else 0.0,
            "errors_captured": float(taken[wrong].mean()) if wrong.any() else 0.0,
            "reasons": dict(self.reasons),
            "skipped": dict(self.skipped),
        }


def round_schedule(
    start: int, budgets: Sequence[int], *, min_round: int, growth: float
) -> list[int]:
    """Label counts after each retrain: rounds of ``max(min_round, growth * labelled)`` new
    labels, plus every budget, up to the largest budget."""
    points = set(budgets)
    count = start
    while count < max(budgets):
        count = max(count + min_round, math.ceil(count * (1.0 + growth)))
        points.add(count)
    return sorted(p for p in points if start < p <= max(budgets))


def cold_start_size(labels: np.ndarray, order: np.ndarray, wanted: int) -> int:
    """Smallest prefix of ``order`` with at least ``wanted`` items that ``train_head`` accepts."""
    size = wanted
    while size < len(order):
        _, counts = np.unique(labels[order[:size]], return_counts=True)
        if len(counts) >= 2 and counts.max() >= 2:
            return size
        size += 1
    raise ValueError("the pool cannot form a trainable cold-start set")


def trainable(labels: np.ndarray) -> bool:
    """Whether ``train_head`` accepts these labels: two classes, one with two samples."""
    _, counts = np.unique(labels, return_counts=True)
    return len(counts) >= 2 and counts.max() >= 2


def _train(
    vectors: np.ndarray,
    labels: np.ndarray,
    chosen: Sequence[int] | np.ndarray,
    seed: int,
    candidates: Sequence[Candidate] | None,
    traffic: Sequence[int] = (),
) -> TrainResult:
    picked = np.asarray(chosen, dtype=np.int64)
    unlabeled = vectors[np.asarray(traffic, dtype=np.int64)] if len(traffic) else None
    return train_head(
        vectors[picked], labels[picked], seed=seed, candidates=candidates, unlabeled=unlabeled
    )


class RecentTraffic:
    """The pool indices of the last ``size`` distinct inputs served (the service's sample)."""

    def __init__(self, size: int = TRAFFIC_SAMPLE) -> None:
        self._size = size
        self._items: OrderedDict[int, None] = OrderedDict()

    def add(self, item: int) -> None:
        if item in self._items:  # a repeat is not a new input (the service dedups repeats)
            return
        self._items[item] = None
        if len(self._items) > self._size:
            self._items.popitem(last=False)

    def items(self) -> list[int]:
        return list(self._items)


def run_random(
    vectors: np.ndarray,
    labels: np.ndarray,
    order: np.ndarray,
    checkpoints: Sequence[int],
    *,
    seed: int,
    candidates: Sequence[Candidate] | None,
    on_checkpoint: CheckpointHook,
    traffic: int = 0,
) -> None:
    """Random capture: the first ``n`` inputs of the stream are the labels at checkpoint ``n``;
    with ``traffic`` > 0, the next ``traffic`` inputs are the unlabelled traffic it saw beside
    them (as if it labelled one input in several)."""
    for count in checkpoints:
        chosen = order[:count]
        seen = order[count : count + traffic]
        on_checkpoint(count, _train(vectors, labels, chosen, seed, candidates, seen), chosen)


def run_pool_margin(
    vectors: np.ndarray,
    labels: np.ndarray,
    order: np.ndarray,
    checkpoints: Sequence[int],
    *,
    cold_start: int,
    seed: int,
    candidates: Sequence[Candidate] | None,
    on_checkpoint: CheckpointHook,
) -> None:
    """Offline pool-based margin sampling, a reference that invoke capture cannot be: each round
    labels the unlabelled pool inputs with the smallest margin under the current head (top-k of
    the whole pool, as in pool-based active-learning benchmarks), from the same cold start."""
    labelled = [int(i) for i in order[:cold_start]]
    unlabelled = np.ones(len(labels), dtype=bool)
    unlabelled[labelled] = False
    result = _train(vectors, labels, labelled, seed, candidates)
    for target in checkpoints:
        candidates_left = np.flatnonzero(unlabelled)
        top_two = np.sort(result.head.predict_proba(vectors[candidates_left]), axis=1)[:, -2:]
        margins = top_two[:, 1] - top_two[:, 0]
        picked = candidates_left[np.argsort(margins, kind="stable")[: target - len(labelled)]]
        unlabelled[picked] = False
        labelled += [int(i) for i in picked]
        result = _train(vectors, labels, labelled, seed, candidates)
        on_checkpoint(len(labelled), result, np.asarray(labelled))


def run_capture(
    vectors: np.ndarray,
    labels: np.ndarray,
    order: np.ndarray,
    policy: CapturePolicy,
    *,
    cold_start: int,
    checkpoints: Sequence[int],
    seed: int,
    items_per_hour: float,
    candidates: Sequence[Candidate] | None,
    on_checkpoint: CheckpointHook,
    reasons_at: dict[int, dict[str, int]] | None = None,
    refit_lag: int | None = None,
) -> StreamLog:
    """Online capture with ``policy``; retrains at each checkpoint (a label count).

    Args:
        vectors: ``(n, dim)`` pool embeddings.
        labels: ``(n,)`` true class names (the oracle).
        order: the stream: a permutation of the pool (wraps around, skipping captured inputs).
        policy: the capture policy under test.
        cold_start: inputs labelled by hand before the first head; 0: none, the first labels
            come from cold-start capture (see the module notes).
        checkpoints: increasing label counts at which the queue is labelled and the head retrained.
        seed: seeds the controller's random slice and the CV folds.
        items_per_hour: simulated traffic rate (drives the policy's budgets).
        candidates: heads ``train_head`` chooses from (None: the service's default grid).
        on_checkpoint: called with ``(label count, trained head, labelled pool indices)``.
        reasons_at: if given, filled with the capture reasons counted so far at each checkpoint.
        refit_lag: None: cold-start refits inline, on the input that finds them due (the
            library's default); N: as the service runs them, by its worker, landing N inputs
            after the one that made them due (0: before the next input).
    """
    now = [0.0]
    controller = CaptureController(
        policy,
        rng=np.random.default_rng(seed + 7919),
        clock=lambda: now[0],
        refit_inline=refit_lag is None,
    )
    refit_in: int | None = None  # inputs until the scheduled refit lands
    index = VectorIndex(vectors.shape[1], background_rebuild=False)
    labelled = [int(i) for i in order[:cold_start]]
    index.add(labelled, vectors[labelled], "labelled")
    counts: dict[str, int] = {}
    for item in labelled:
        counts[str(labels[item])] = counts.get(str(labels[item]), 0) + 1
    taken = np.zeros(len(labels), dtype=bool)
    taken[labelled] = True
    log = StreamLog()
    traffic = _Traffic(order, taken, start=cold_start)
    recent = RecentTraffic()
    result = _train(vectors, labels, labelled, seed, candidates) if labelled else None
    for target in checkpoints:
        head = None if result is None else result.head
        classes = [] if head is None else [str(c) for c in head.classes_]
        pending: list[int] = []
        served = traffic.scored(vectors, head)
        served_before = log.inputs_seen
        for item, proba in served:
            log.inputs_seen += 1
            recent.add(item)
            now[0] += 3600.0 / items_per_hour
            if refit_in is not None:
                refit_in -= 1
                if refit_in < 0:
                    controller.refit_cold_start(index)
                    refit_in = None
            if proba is None:
                decision = controller.decide_cold_start(vectors[item], index)
            else:
                decision = controller.decide(proba, classes, vectors[item], index, counts)
                log.head_wrong.append(decision.predicted_label != labels[item])
                log.captured.append(decision.captured)
            if decision.captured:
                controller.commit(decision)
                add_pending(index, item, vectors[item])
                taken[item] = True
                pending.append(item)
                reason = str(decision.reason)
                log.reasons[reason] = log.reasons.get(reason, 0) + 1
            else:
                skipped = str(decision.skipped_because)
                log.skipped[skipped] = log.skipped.get(skipped, 0) + 1
            if refit_lag is not None and refit_in is None and controller.cold_start_refit_due:
                refit_in = refit_lag
            if len(labelled) + len(pending) >= target:
                break
            if log.inputs_seen > 50 * len(labels) + served_before:
                raise RuntimeError(f"capture stalled: {len(pending)} captures in 50 passes")
        served.close()
        index.remove(pending, "pending")
        index.add(pending, vectors[pending], "labelled")
        for item in pending:
            counts[str(labels[item])] = counts.get(str(labels[item]), 0) + 1
        labelled += pending
        result = (
            _train(vectors, labels, labelled, seed, candidates, recent.items())
            if trainable(labels[labelled])
            else None
        )
        on_checkpoint(len(labelled), result, np.asarray(labelled))
        if reasons_at is not None:
            reasons_at[len(labelled)] = dict(log.reasons)
    return log


class _Traffic:
    """Endless traffic: the pool in ``order``, then again, never yielding a captured input."""

    def __init__(self, order: np.ndarray, taken: np.ndarray, *, start: int) -> None:
        self._order, self._taken, self._position = order, taken, start
        self._returned: list[int] = []

    def take(self, count: int) -> list[int]:
        """Up to ``count`` next inputs (fewer only when every input was captured)."""
        items = self._returned[:count]
        del self._returned[:count]
        while len(items) < count and not self._taken.all():
            if self._position >= len(self._order):
                self._position = 0
            item = int(self._order[self._position])
            self._position += 1
            if not self._taken[item]:
                items.append(item)
        return items

    def give_back(self, items: list[int]) -> None:
        """Inputs taken but not served (the round ended): they come next."""
        self._returned = items + self._returned

    def scored(
        self, vectors: np.ndarray, head: object | None, block: int = 64
    ) -> Generator[tuple[int, np.ndarray | None], None, None]:
        """Next inputs with the head's probabilities (None without a head), computed in blocks
        (the head is fixed within a round); inputs of a block left unserved go back."""
        while True:
            items = self.take(block)
            if not items:
                return
            probabilities: Sequence[np.ndarray | None] = (
                [None] * len(items) if head is None else head.predict_proba(vectors[items])  # type: ignore[attr-defined]
            )
            for position, item in enumerate(items):
                try:
                    yield item, probabilities[position]
                except GeneratorExit:
                    self.give_back(items[position + 1 :])
                    raise

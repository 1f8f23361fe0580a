"""A capture decision: whether an input was captured, why (or why not), and every number that
led to it (:class:`capture.controller.CaptureController` makes them; queue items store them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

CaptureReason = Literal["uncertain", "novel", "coverage", "rare_class", "random", "cold_start"]
SkipReason = Literal["duplicate", "budget_hour", "budget_day", "below_threshold", "warming_up"]


@dataclass(frozen=True)
class CaptureDecision:
    """The outcome for one input, with every number that led to it (stored for inspection)."""

    captured: bool
    # Why it was captured: "uncertain" (uncertainty alone exceeds the threshold), "novel"
    # (calibrated novelty passes the policy's novelty_threshold, or with a novelty_weight,
    # uncertainty alone does not pass the threshold and kNN novelty lifts the score over it),
    # "coverage" (only the
    # under-covered region's weight lifts it over), "rare_class" (only the rare-class boost
    # lifts it over), "random" (the unbiased slice), "cold_start" (no head yet: typical of an
    # uncovered region of traffic), "rule:<name>" (close to a policy rule's examples); None when
    # not captured.
    reason: CaptureReason | str | None
    # Informativeness, including any rare-class boost, in [0, 1].
    score: float
    uncertainty: float
    novelty: float
    # Cosine similarity to the nearest labelled or pending item; None for an empty index.
    nearest_similarity: float | None
    # Threshold the score was compared with.
    threshold: float
    # Why it was not captured: "duplicate", "budget_hour", "budget_day", "below_threshold",
    # "warming_up" (no head, and too little traffic seen yet to tell what is typical).
    skipped_because: SkipReason | None
    # The head's label; None before any head (cold start).
    predicted_label: str | None
    # Region of traffic the input fell in (see capture.coverage); None with balancing disabled.
    region: int | None = None
    # Factor the region's coverage applied to the score (> 1: under-covered, < 1: over-covered).
    coverage_weight: float = 1.0
    # Calibrated novelty against the labelled data (capture.novelty: share of labelled samples
    # less novel than the input); None when the function has no novelty model yet.
    calibrated_novelty: float | None = None
    # Whether calibrated_novelty passed the policy's novelty_threshold (novel traffic).
    is_novel: bool = False
    # Budget reservation to settle with commit() / rollback(); None when not captured.
    reservation: int | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (e.g. for the queue item's metadata or the invoke response)."""
        values = asdict(self)
        del values["reservation"]
        return values

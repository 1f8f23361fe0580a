"""A function's capture policy: the settings that decide how much of its traffic goes to review.

Stored as JSON with the function; :meth:`CapturePolicy.from_dict` validates user input and raises
:class:`InvalidPolicy` (a client error) naming the bad setting.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from capture.errors import InvalidPolicy
from capture.rules import CaptureRule, parse_rules
from capture.scores import DEFAULT_NOVELTY_WEIGHT
from capture.strategies import get_strategy


@dataclass(frozen=True)
class CapturePolicy:
    # Uncertainty strategy by registry name: "margin" (default), "entropy", "least_confidence".
    strategy: str = "margin"
    # Fraction of traffic to capture as informative (the random slice comes on top of it).
    target_rate: float = 0.1
    # Most captures in any rolling hour (0 disables capture).
    max_per_hour: int = 100
    # Most captures in any rolling 24 hours.
    max_per_day: int = 1000
    # Probability that an input joins an unbiased random slice whatever its score: labelled, the
    # slice estimates accuracy on real traffic and is the retrain holdout. Each random capture is
    # a label not spent on an informative input; on the label-efficiency benchmark 0.01 moved the
    # headline ratio from 0.57 to 0.65 (3 seeds, within their spread) - the price of an unbiased
    # estimate.
    random_rate: float = 0.01
    # Predicted classes with fewer labelled samples than this get rare_class_boost.
    rare_class_min_samples: int = 10
    # When the predicted class is rare, the score moves this fraction of the way to 1 (0, the
    # default, disables it: coverage balancing already spreads captures over the traffic).
    rare_class_boost: float = 0.0
    # Cosine similarity to a labelled or pending item at or above which an input is a
    # near-duplicate and is never captured.
    duplicate_similarity: float = 0.98
    # Share of the informativeness score that comes from kNN novelty (uncertainty keeps the rest).
    novelty_weight: float = DEFAULT_NOVELTY_WEIGHT
    # Regions of traffic (online k-means) that captures are balanced over; 0 disables balancing.
    coverage_clusters: int = 50
    # How hard captures are balanced over regions: the odds of a score are multiplied by
    # ((1 + mean captures per region) / (1 + the region's captures)) ** strength; 0 disables.
    coverage_strength: float = 1.0
    # How many captures the balancing remembers: a capture this many captures old weighs 1/e,
    # so recent picks are spread over the regions rather than all-time counts equalised (about
    # one pick per region by default); 0 counts every capture forever.
    coverage_memory: int = 50
    # Nearest neighbours searched for novelty and duplicate detection.
    knn_k: int = 5
    # Whether annotations (review, sample uploads, annotation updates) may create labels the
    # function does not have yet (service.functions.may_create_labels).
    allow_new_labels: bool = True
    # Number of recent scores the adaptive threshold is computed from.
    window: int = 500
    # Threshold used until enough scores have been seen to estimate the adaptive one.
    initial_threshold: float = 0.7
    # Named "more like these" rules (see capture.rules): inputs close to a rule's examples are
    # captured with reason "rule:<name>".
    rules: tuple[CaptureRule, ...] = ()
    # Most mislabel suspects (labelled samples whose label a training doubts) pending review at
    # once; each training tops the queue up to it. 0 disables suspects.
    suspect_budget: int = 20
    # Calibrated novelty (see capture.novelty: the share of labelled samples less novel than the
    # input) above which an input is captured with reason "novel" and counts as novel traffic
    # (the drift signal); 1 turns novel capture off. 0.99 flags about 1% of ordinary traffic.
    novelty_threshold: float = 0.99
    # Fewest novel items a cluster needs to be proposed as a new label.
    proposal_min_size: int = 10
    # How tight a proposal must be: its members' mean pairwise cosine distance stays below this
    # times that of a typical labelled class (1: no looser than the labels the function has).
    # On B7 (novelty relative to the traffic, 3 seeds, proposals every 100 invokes) 1.0 proposed
    # every unseen class, 1.25 never proposed shirts apart from pullovers, 0.85 was no sooner;
    # none of them proposed anything on seen-only traffic at proposalMinSize 10.
    proposal_tightness: float = 1.0
    # Review by a team (review_queue.team). Reviews an item needs before it becomes a sample:
    # with 2 or more, agreeing reviews make the sample and disagreeing ones a dispute.
    reviews_per_item: int = 1
    # Share of items reviewed by two people even when reviews_per_item is 1, to measure agreement.
    overlap_rate: float = 0.0
    # Share of the items a claim hands a reviewer that are gold: labelled samples shown blind,
    # whose votes measure the reviewer's accuracy and never change a sample.
    gold_rate: float = 0.0
    # Minutes a claim reserves its items to the reviewer (claiming again renews the lease).
    claim_minutes: float = 10.0
    # Settle disagreeing reviews by the reviewers' estimated accuracies (Dawid-Skene) when the
    # favoured label's posterior reaches weighted_min_posterior; else they are a dispute.
    weight_votes: bool = False
    # The posterior a weighted settle needs (0.95 against 0.70 over ten labels gives 0.85).
    weighted_min_posterior: float = 0.8

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", parse_rules(self.rules))
        for setting in dataclasses.fields(self):
            if setting.name == "rules":
                continue
            _check_type(setting.name, getattr(self, setting.name), _TYPES[setting.name])
        for name, is_valid, requirement in _RULES:
            value = getattr(self, name)
            if not is_valid(value):
                raise InvalidPolicy(f"capture policy {name} {requirement}, got {value!r}")
        if self.max_per_hour > self.max_per_day:
            raise InvalidPolicy(
                f"capture policy max_per_hour ({self.max_per_hour}) cannot exceed "
                f"max_per_day ({self.max_per_day})"
            )
        get_strategy(self.strategy)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of every setting (rules with their resolved vectors: for storage)."""
        values = dataclasses.asdict(self)
        values["rules"] = [
            {**dataclasses.asdict(rule), "examples": list(rule.examples)} for rule in self.rules
        ]
        return values

    def public_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` as shown to users: rules as written, without their vectors."""
        return {**self.to_dict(), "rules": [rule.public_dict() for rule in self.rules]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CapturePolicy:
        """Build and validate a policy; missing settings take their defaults.

        Args:
            data: e.g. parsed JSON from a request or the database.

        Raises:
            InvalidPolicy: an unknown setting, a wrong type or an out-of-range value.
        """
        if not isinstance(data, Mapping):
            raise InvalidPolicy(f"capture policy must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_TYPES))
        if unknown:
            raise InvalidPolicy(
                f"unknown capture policy setting(s): {', '.join(map(str, unknown))}; "
                f"known: {', '.join(_TYPES)}"
            )
        values: dict[str, Any] = {
            name: parse_rules(value) if name == "rules" else _coerce(name, value, _TYPES[name])
            for name, value in data.items()
        }
        return cls(**values)


_TYPES: dict[str, type] = {
    "strategy": str,
    "target_rate": float,
    "max_per_hour": int,
    "max_per_day": int,
    "random_rate": float,
    "rare_class_min_samples": int,
    "rare_class_boost": float,
    "duplicate_similarity": float,
    "novelty_weight": float,
    "coverage_clusters": int,
    "coverage_strength": float,
    "coverage_memory": int,
    "knn_k": int,
    "allow_new_labels": bool,
    "window": int,
    "initial_threshold": float,
    "rules": list,
    "suspect_budget": int,
    "novelty_threshold": float,
    "proposal_min_size": int,
    "proposal_tightness": float,
    "reviews_per_item": int,
    "overlap_rate": float,
    "gold_rate": float,
    "claim_minutes": float,
    "weight_votes": bool,
    "weighted_min_posterior": float,
}


_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    float: "a finite number",
    int: "an integer",
    bool: "true or false",
}


def _fraction(value: float) -> bool:
    return 0.0 <= value <= 1.0


_RULES: list[tuple[str, Any, str]] = [
    ("target_rate", lambda v: 0.0 < v <= 1.0, "must be within (0, 1]"),
    ("max_per_hour", lambda v: v >= 0, "must be >= 0"),
    ("max_per_day", lambda v: v >= 0, "must be >= 0"),
    ("random_rate", _fraction, "must be within [0, 1]"),
    ("rare_class_min_samples", lambda v: v >= 0, "must be >= 0"),
    ("rare_class_boost", _fraction, "must be within [0, 1]"),
    ("duplicate_similarity", lambda v: 0.0 < v <= 1.0, "must be within (0, 1]"),
    ("novelty_weight", _fraction, "must be within [0, 1]"),
    ("coverage_clusters", lambda v: 0 <= v <= 1000, "must be within [0, 1000]"),
    ("coverage_strength", lambda v: 0.0 <= v <= 10.0, "must be within [0, 10]"),
    ("coverage_memory", lambda v: v >= 0, "must be >= 0"),
    ("knn_k", lambda v: 1 <= v <= 100, "must be within [1, 100]"),
    ("window", lambda v: 10 <= v <= 100_000, "must be within [10, 100000]"),
    ("initial_threshold", _fraction, "must be within [0, 1]"),
    ("suspect_budget", lambda v: 0 <= v <= 1000, "must be within [0, 1000]"),
    ("novelty_threshold", _fraction, "must be within [0, 1]"),
    ("proposal_min_size", lambda v: 2 <= v <= 10_000, "must be within [2, 10000]"),
    ("proposal_tightness", lambda v: 0.0 < v <= 10.0, "must be within (0, 10]"),
    ("reviews_per_item", lambda v: 1 <= v <= 5, "must be within [1, 5]"),
    ("overlap_rate", _fraction, "must be within [0, 1]"),
    ("gold_rate", lambda v: 0.0 <= v <= 0.5, "must be within [0, 0.5]"),
    ("claim_minutes", lambda v: 1.0 <= v <= 1440.0, "must be within [1, 1440]"),
    ("weighted_min_posterior", lambda v: 0.5 < v <= 1.0, "must be within (0.5, 1]"),
]


def _check_type(name: str, value: Any, expected: type) -> None:
    if expected is float:
        valid = isinstance(value, int | float) and not isinstance(value, bool)
        valid = valid and math.isfinite(value)
    elif expected is int:
        valid = isinstance(value, int) and not isinstance(value, bool)
    else:
        valid = isinstance(value, expected)
    if not valid:
        raise InvalidPolicy(f"capture policy {name} must be {_TYPE_NAMES[expected]}, got {value!r}")


def _coerce(name: str, value: Any, expected: type) -> Any:
    """Accept JSON's looser numbers (``100.0`` for an int, ``1`` for a float), nothing else."""
    if expected is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    _check_type(name, value, expected)
    return value

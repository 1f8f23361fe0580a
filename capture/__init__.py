"""Invoke capture: score each input's informativeness and decide whether it goes to review.

Pure score functions (:mod:`capture.scores`), the per-function FAISS index
(:mod:`capture.index`, :mod:`capture.registry`), the policy settings (:mod:`capture.policy`) and
the controller that turns them into decisions under a budget (:mod:`capture.controller`).
Nothing here writes to the database: callers persist what the controller decides.
"""

from capture.budget import CaptureBudget
from capture.controller import CaptureController, add_pending
from capture.decision import CaptureDecision, CaptureReason, SkipReason
from capture.errors import (
    CaptureError,
    DimensionMismatch,
    InvalidArray,
    InvalidPolicy,
    UnknownKind,
    UnknownStrategy,
)
from capture.index import KINDS, Kind, SearchResult, VectorIndex
from capture.policy import CapturePolicy
from capture.registry import IndexRegistry
from capture.scores import (
    DEFAULT_NOVELTY_WEIGHT,
    entropy_uncertainty,
    informativeness,
    knn_novelty,
    least_confidence,
    margin_uncertainty,
)
from capture.strategies import (
    UncertaintyStrategy,
    get_strategy,
    register_strategy,
    strategy_names,
)
from capture.threshold import AdaptiveThreshold

__all__ = [
    "DEFAULT_NOVELTY_WEIGHT",
    "KINDS",
    "AdaptiveThreshold",
    "CaptureBudget",
    "CaptureController",
    "CaptureDecision",
    "CaptureError",
    "CapturePolicy",
    "CaptureReason",
    "DimensionMismatch",
    "IndexRegistry",
    "InvalidArray",
    "InvalidPolicy",
    "Kind",
    "SearchResult",
    "SkipReason",
    "UncertaintyStrategy",
    "UnknownKind",
    "UnknownStrategy",
    "VectorIndex",
    "add_pending",
    "entropy_uncertainty",
    "get_strategy",
    "informativeness",
    "knn_novelty",
    "least_confidence",
    "margin_uncertainty",
    "register_strategy",
    "strategy_names",
]

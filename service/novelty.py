"""Novelty wiring: each function's calibrated novelty model and its novel-traffic counts."""

from __future__ import annotations

from datetime import UTC, datetime

from capture import CapturePolicy
from capture.novelty import MIN_CLASSES, MIN_SAMPLES, NoveltyModel
from service.labelled import labelled_data
from service.runtime import Runtime
from service.schemas import DriftPublic, NoveltyHour
from store import Function


def fit_novelty(rt: Runtime, function_id: str, seed: int = 0) -> NoveltyModel | None:
    """A model fitted on the function's labelled data; None with too little of it."""
    data = labelled_data(rt, function_id)
    vectors, names = data.vectors, data.names
    if len(names) < MIN_SAMPLES or len(set(names)) < MIN_CLASSES:
        return None
    return NoveltyModel(vectors, names, seed=seed)


def novelty_model(rt: Runtime, function: Function) -> NoveltyModel | None:
    """The function's current model, refitted in this thread when its annotations moved on
    (at most once per ``NoveltyModels.min_refit_seconds``); None with too little labelled data.
    Invokes never call this: they read the model their serving snapshot holds."""
    return rt.novelty.current(
        function.id, function.annotation_counter, lambda: fit_novelty(rt, function.id)
    )


def drift_public(rt: Runtime, function: Function) -> DriftPublic:
    """The function's novel share per hour over the last day, as this process counted it
    (hours without a scored invoke omitted: they have no share)."""
    policy = CapturePolicy.from_dict(function.capture_policy or {})
    hours = [h for h in rt.novel_traffic.hours(function.id, last=24) if h.scored]
    return DriftPublic(
        novelty_threshold=policy.novelty_threshold,
        novel_share_last_hour=rt.novel_traffic.current_share(function.id),
        hours=[
            NoveltyHour(
                hour=datetime.fromtimestamp(h.start, UTC),
                invokes=h.scored,  # the field is documented as the scored invokes
                novel=h.novel,
                novel_share=h.novel_share,
            )
            for h in hours
        ],
    )

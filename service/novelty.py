"""Novelty wiring: each function's calibrated novelty model and its novel-traffic counts."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

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
    """The function's current model (refitted when its annotations moved on, see
    :class:`capture.novelty_models.NoveltyModels`); None with too little labelled data."""
    return rt.novelty.current(
        function.id, function.annotation_counter, lambda: fit_novelty(rt, function.id)
    )


def score_novelty(
    rt: Runtime, function: Function, vector: np.ndarray, *, scored: bool = True
) -> float | None:
    """Calibrated novelty of one embedded input relative to the function's recent traffic, which
    the input then joins; None while the function has no model (or ``scored`` is False)."""
    traffic = rt.novelty.traffic(function.id, vector.shape[0])
    model = novelty_model(rt, function) if scored else None
    if model is None or model.dim != vector.shape[0]:
        traffic.add(vector[None, :])
        return None
    return float(traffic.score(model, vector[None, :])[0])


def drift_public(rt: Runtime, function: Function) -> DriftPublic:
    """The function's novel share per hour over the last day, as this process counted it."""
    policy = CapturePolicy.from_dict(function.capture_policy or {})
    hours = rt.novel_traffic.hours(function.id, last=24)
    return DriftPublic(
        novelty_threshold=policy.novelty_threshold,
        novel_share_last_hour=rt.novel_traffic.current_share(function.id),
        hours=[
            NoveltyHour(
                hour=datetime.fromtimestamp(h.start, UTC),
                invokes=h.invokes,
                novel=h.novel,
                novel_share=h.novel_share,
            )
            for h in hours
        ],
    )

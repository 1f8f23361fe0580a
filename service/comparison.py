"""Champion/challenger: whether a trained head replaces the one serving."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from learner import Candidate, Deployed, TextPrior, TrainResult, cross_validated_predictions
from learner.champion import (
    Comparison,
    DeployDecision,
    compare_on,
    count_flips,
    decide,
    decide_over_zero_shot,
    predicted_labels,
)
from service.labelled import LabelledData
from service.runtime import Runtime
from service.zero_shot import ensure_zero_shot
from store import Function, ModelVersion, as_utc

log = logging.getLogger("winnow.training")

# Fewest samples a comparison basis needs before it may reject a challenger.
MIN_COMPARISON_SAMPLES = 10


def compare_with_champion(
    rt: Runtime,
    champion: Deployed | None,
    champion_row: ModelVersion | None,
    result: TrainResult,
    data: LabelledData,
    prior: TextPrior | None = None,
    *,
    traffic: np.ndarray | None = None,
) -> DeployDecision:
    """Whether ``result`` replaces the champion (``prior`` and ``traffic``: what the champion's
    recipe is rebuilt with for the same-folds comparison, as the challenger's was trained)."""
    tolerance = rt.settings.deploy_tolerance
    if champion is None or champion_row is None:
        return DeployDecision(
            deploy=True, reason="first model of this function", tolerance=tolerance
        )
    truth = np.asarray(data.names, dtype=object)
    champion_pred = predicted_labels(champion.head, data.vectors)
    trained_at = as_utc(champion_row.created_at)
    unseen = np.array(
        [at is not None and at > trained_at for at in data.annotated_at], dtype=np.bool_
    )
    comparisons = [
        compare_on(
            "holdout",
            unseen & data.from_random_slice,
            truth=truth,
            challenger_pred=result.oof_pred,
            champion_pred=champion_pred,
        ),
        compare_on(
            "new_samples",
            unseen,
            truth=truth,
            challenger_pred=result.oof_pred,
            champion_pred=champion_pred,
        ),
        _same_folds(champion_row, result, data, truth, prior, traffic),
    ]
    decision = decide(comparisons, tolerance=tolerance, min_samples=MIN_COMPARISON_SAMPLES)
    flips = count_flips(champion.head, result.head, data.vectors)
    return replace(decision, flips=flips, flip_rate=flips / max(1, len(truth)))


def compare_with_zero_shot(
    rt: Runtime, function: Function, result: TrainResult, data: LabelledData
) -> DeployDecision:
    """Version 0 serves: the challenger must beat it on the labelled samples (it saw none)."""
    zero_shot = ensure_zero_shot(rt, function)
    if zero_shot is None:  # the backbone lost its text tower's encoder: nothing to compare
        return DeployDecision(
            deploy=True,
            reason="the zero-shot head is unavailable; first trained model",
            tolerance=0.0,
        )
    return compare_with_version_zero(zero_shot, result, data, name="the zero-shot head")


def compare_with_version_zero(
    version_zero: Deployed, result: TrainResult, data: LabelledData, *, name: str
) -> DeployDecision:
    """A version 0 fitted on no sample (zero-shot, or a preset's pretrained classifier) serves:
    the challenger must beat it on the labelled samples.

    Args:
        version_zero: what serves version 0.
        result: the challenger's training.
        data: the labelled samples it trained on.
        name: version 0 as the decision's reason names it, e.g. "the preset head".
    """
    truth = np.asarray(data.names, dtype=object)
    zero_pred = predicted_labels(version_zero.head, data.vectors)
    every = np.ones(len(truth), dtype=bool)
    comparisons = [
        compare_on(
            basis, mask, truth=truth, challenger_pred=result.oof_pred, champion_pred=zero_pred
        )
        for basis, mask in (("holdout", data.from_random_slice), ("all_samples", every))
    ]
    decision = decide_over_zero_shot(
        comparisons, min_samples=MIN_COMPARISON_SAMPLES, champion_name=name
    )
    flips = count_flips(version_zero.head, result.head, data.vectors)
    return replace(decision, flips=flips, flip_rate=flips / max(1, len(truth)))


def _same_folds(
    champion_row: ModelVersion,
    result: TrainResult,
    data: LabelledData,
    truth: np.ndarray,
    prior: TextPrior | None = None,
    traffic: np.ndarray | None = None,
) -> Comparison:
    """The champion's recipe cross-validated on the challenger's folds, with today's labels (and
    today's traffic sample, for a recipe that learns from it)."""
    recipe = Candidate(champion_row.head, dict(champion_row.params), prior=prior, unlabeled=traffic)
    scored = result.folds >= 0
    try:
        champion_pred, _ = cross_validated_predictions(
            recipe, data.vectors, data.names, result.folds
        )
    except (KeyError, ValueError) as exc:  # an unknown or unfit recipe cannot be compared
        log.warning("champion recipe %s not comparable: %s", recipe.key, exc)
        return Comparison("same_folds", 0, float("nan"), float("nan"))
    return compare_on(
        "same_folds",
        scored,
        truth=truth,
        challenger_pred=result.oof_pred,
        champion_pred=champion_pred,
    )

"""Mislabel suspects at training time, and the label changes the model history counts.

Every training already has out-of-fold probabilities for each labelled sample (model selection
computed them); :func:`learner.label_issues.find_label_issues` turns them, with the embeddings,
into suspects, and the review queue keeps up to the policy's ``suspectBudget`` of them pending.
"""

from __future__ import annotations

import logging

import numpy as np
from sqlalchemy import func as sql
from sqlmodel import Session, col, select

from capture import CapturePolicy
from learner import TrainResult
from learner.label_issues import find_label_issues
from review_queue import Suspect, queue_suspects
from service.labelled import LabelledData
from service.runtime import Runtime
from store import Function, ModelVersion, Sample, session_scope

log = logging.getLogger("winnow.suspects")


def training_suspects(result: TrainResult, data: LabelledData) -> list[Suspect]:
    """The samples the training's out-of-fold probabilities and kNN neighbours doubt, most
    suspicious first."""
    labels = np.asarray(result.labels, dtype=object)
    given = np.searchsorted(labels, np.asarray(data.names, dtype=object))
    issues = find_label_issues(
        result.oof_proba, given, vectors=data.vectors, temperature=result.temperature
    )
    return [
        Suspect(
            sample_id=data.sample_ids[i],
            given_label=data.names[i],
            suggested_label=str(labels[issues.suggested[i]]),
            label_quality=float(issues.quality[i]),
            suggested_confidence=float(issues.suggested_confidence[i]),
        )
        for i in issues.ranked_suspects()
    ]


def queue_suspects_safely(
    rt: Runtime, function_id: str, result: TrainResult, data: LabelledData, version: int
) -> None:
    """Refresh the function's pending suspects from this training; a failure here is logged and
    never fails the training (the model is already recorded)."""
    try:
        suspects = training_suspects(result, data)
        with session_scope(rt.engine) as session:
            function = session.get(Function, function_id)
            if function is None:
                return
            budget = CapturePolicy.from_dict(function.capture_policy or {}).suspect_budget
            added = queue_suspects(
                session=session,
                function_id=function_id,
                suspects=suspects,
                budget=budget,
                model_version=version,
            )
        log.info(
            "function %s: version %d flags %d suspect label(s), %d queued",
            function_id,
            version,
            len(suspects),
            len(added),
        )
    except Exception:
        log.exception("function %s: mislabel suspects not updated", function_id)


def labels_changed_since(session: Session, function: Function) -> int | None:
    """Samples the deployed (parent) version trained on whose label changed since it was
    trained; None when there is no parent."""
    if function.deployed_version is None:
        return None
    parent = session.exec(
        select(ModelVersion.created_at).where(
            ModelVersion.function_id == function.id,
            ModelVersion.version == function.deployed_version,
        )
    ).first()
    if parent is None:
        return None
    return int(
        session.exec(
            select(sql.count()).where(
                Sample.function_id == function.id,
                col(Sample.created_at) <= parent,
                col(Sample.label_changed_at) > parent,
            )
        ).one()
    )

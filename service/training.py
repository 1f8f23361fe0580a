"""Training and the scheduled retrain check (deploy decisions: :mod:`service.comparison`;
deploys and rollback: :mod:`service.deploys`)."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
from sqlalchemy import ColumnElement, or_
from sqlalchemy import func as sql
from sqlmodel import col, select

from learner import (
    ArtifactCorrupt,
    ArtifactNotFound,
    Deployed,
    NotEnoughData,
    TrainingCancelled,
    train_head,
)
from learner.finetune import TUNED_HEAD
from service.comparison import (
    compare_with_champion,
    compare_with_version_zero,
    compare_with_zero_shot,
)
from service.deploys import deployed_row, record_version
from service.finetune import finetune_due, finetune_function
from service.functions import get_function
from service.labelled import labelled_data
from service.presets import is_preset
from service.runtime import Runtime
from service.samples import space_tail
from service.serving import serving_snapshot
from service.suspects import queue_suspects_safely
from service.zero_shot import (
    ensure_zero_shot,
    is_zero_shot,
    text_prior,
)
from store import (
    Function,
    ModelVersion,
    Sample,
    as_utc,
    session_scope,
    shared_lock,
)

log = logging.getLogger("winnow.training")


def train_function(
    rt: Runtime, function_id: str, *, trigger: str = "manual", wait: bool = True
) -> ModelVersion | None:
    """Train on every labelled sample and deploy the result if it is not worse than the champion.

    Returns the new version's record, or None when ``wait`` is False and the function is
    already training, here or in another process sharing the database (the trigger is
    coalesced into the running training). The artifact is durable before the database names
    it, and the in-memory head is swapped last, so a crash at any point leaves the previous
    version serving.
    """
    with rt.training.run(function_id, trigger, wait=wait) as started:
        if not started:
            return None
        with shared_lock(rt.engine, f"train:{function_id}", wait=wait) as held:
            if not held:  # another replica is training it
                return None
            with rt.metrics.training_run(trigger) as run:
                record = _train(rt, function_id, trigger)
                run.outcome = record.status
                return record


def _train(rt: Runtime, function_id: str, trigger: str) -> ModelVersion:
    # This training reads every annotation made so far: a request made from now on asks for
    # another one. Cleared here, inside the training slot, so "requested or training" never
    # reads false while a requested training is about to start.
    rt.train_requests.discard(function_id)
    rt.annotation_bursts.clear(function_id)
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
    if function.deployed_version is None:
        # with a text tower, labels alone make version 0 the champion a first head must beat
        ensure_zero_shot(rt, function)
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
        champion_row = deployed_row(session, function)
    counter = function.annotation_counter
    data = labelled_data(rt, function_id)
    if len(set(data.names)) < 2:
        raise NotEnoughData(
            f"training needs labelled samples of at least 2 labels; function {function_id} "
            f"has {len(data.names)} labelled sample(s) in {len(set(data.names))} label(s)"
        )
    rt.training.phase(function_id, "training")
    prior = text_prior(rt, function)  # a text tower adds the few-shot family to the candidates
    # with enough recent traffic, the semi-supervised family joins the candidates
    traffic = traffic_sample(rt, function_id, dim=data.vectors.shape[1])
    result = train_head(data.vectors, data.names, text_prior=prior, unlabeled=traffic)
    rt.training.phase(function_id, "comparing")
    if is_zero_shot(champion_row):
        decision = compare_with_zero_shot(rt, function, result, data)
    else:
        champion = _champion(rt, function_id, champion_row)
        if champion is not None and is_preset(champion_row):  # beaten, not merely matched
            decision = compare_with_version_zero(champion, result, data, name="the preset head")
        else:
            decision = compare_with_champion(
                rt, champion, champion_row, result, data, prior, traffic=traffic
            )
    # in a tuned space the head answers on the tuned tower's features: served with that tower
    tail = space_tail(rt, function_id, data.space)
    record = record_version(
        rt,
        function_id,
        result.head if tail is None else tail.with_classifier(result.head),
        decision,
        vector_space=data.space,
        labels=list(result.labels),
        label_counts=dict(Counter(data.names)),
        head=result.candidate_name,
        params=dict(result.params),
        # every candidate's cross-validated score beside the chosen one's metrics: which
        # families competed (the semi-supervised one only with enough traffic) and how
        metrics={**result.metrics, "cv_scores": result.summary()["cv_scores"]},
        sample_count=result.n_samples,
        annotation_counter=counter,
        train_seconds=result.train_seconds,
        trigger=trigger,
    )
    queue_suspects_safely(rt, function_id, result, data, record.version)
    log.info(
        "function %s: version %d %s: %s",
        function_id,
        record.version,
        record.status,
        record.decision["reason"],
    )
    return record


def traffic_sample(rt: Runtime, function_id: str, *, dim: int) -> np.ndarray | None:
    """The function's stored traffic sample, as every replica wrote it (vectors of another
    width than ``dim`` left out); None when it has none."""
    traffic = rt.traffic_sample.read(function_id)
    if traffic is None or traffic.shape[1] != dim:
        return None
    return traffic


def _champion(rt: Runtime, function_id: str, row: ModelVersion | None) -> Deployed | None:
    """The deployed version's head: the one serving here, else read from its artifact."""
    if row is None:
        return None
    served = serving_snapshot(rt, function_id).model
    if served is not None and served.version == row.version:
        return served
    try:
        head, _meta = rt.models.load(function_id, row.version, sha256=row.artifact_sha256)
    except (ArtifactNotFound, ArtifactCorrupt):
        log.exception("function %s: the deployed version cannot be read", function_id)
        return None
    return Deployed.of(row.version, head)


def retrain_check(rt: Runtime) -> None:
    """The scheduler's tick: retrain functions that are due (replicas follow each other's deploys
    through the serving worker's poll, :mod:`service.serving`)."""
    with session_scope(rt.engine) as session:
        functions = session.exec(select(Function)).all()
        trained_counters = dict(
            session.exec(
                select(ModelVersion.function_id, sql.max(ModelVersion.annotation_counter))
                .where(_trained_on_its_labels())
                .group_by(ModelVersion.function_id)
            ).all()
        )
    for function in functions:
        requested = function.id in rt.train_requests
        new = function.annotation_counter - (trained_counters.get(function.id) or 0)
        if not requested and new < rt.settings.retrain_min_annotations:
            continue
        settling = _settling(rt, function.id)
        if settling > 0:  # annotations still arrive: check again once they may have stopped
            if rt.scheduler is not None:
                rt.scheduler.kick(settling)
            continue
        try:
            train_function(
                rt, function.id, trigger="manual" if requested else "schedule", wait=False
            )
        except NotEnoughData as exc:
            log.info("function %s: not retrained: %s", function.id, exc)
        except Exception:
            log.exception("function %s: scheduled training failed", function.id)
    if rt.settings.finetune == "auto":
        for function in functions:
            _finetune_if_due(rt, function.id)


def _finetune_if_due(rt: Runtime, function_id: str) -> None:
    """A scheduled fine-tune of the function, if one is due (read afresh: the retrains above
    may have deployed)."""
    with session_scope(rt.engine) as session:
        function = session.get(Function, function_id)
    if function is None or not finetune_due(rt, function):
        return
    try:
        finetune_function(rt, function_id, trigger="schedule", wait=False)
    except (NotEnoughData, TrainingCancelled) as exc:
        log.info("function %s: not fine-tuned: %s", function_id, exc)
    except Exception:
        log.exception("function %s: scheduled fine-tune failed", function_id)


def _settling(rt: Runtime, function_id: str) -> float:
    """Seconds until the function's annotations count as settled (``retrain_debounce`` after the
    last one, read from the database, so annotations made through other replicas count too)."""
    with session_scope(rt.engine) as session:
        last = as_utc(
            session.exec(
                select(sql.max(Sample.annotated_at)).where(Sample.function_id == function_id)
            ).one()
        )
    if last is not None:
        rt.annotation_bursts.arrived(function_id, at=last.timestamp())
    return rt.annotation_bursts.wait(function_id)


def request_training(rt: Runtime, function_id: str) -> None:
    """Train ``function_id`` once its annotations settle (``retrain_debounce`` seconds without a
    new one): a burst of uploads trains once, after its last sample. Without a scheduler
    (``retrain_interval`` 0) nothing would act on it, so nothing is recorded: only POST
    .../train trains."""
    if rt.scheduler is None:
        return
    rt.train_requests.add(function_id)
    rt.annotation_bursts.arrived(function_id)
    rt.scheduler.kick(rt.settings.retrain_debounce)


def is_training(rt: Runtime, function_id: str) -> bool:
    """A training of the function is running in this process or has been requested."""
    return function_id in rt.train_requests or rt.training.is_training(function_id)


def new_annotations(rt: Runtime, function: Function) -> int:
    """Annotation events since the last training (what the scheduler compares with its minimum)."""
    with session_scope(rt.engine) as session:
        trained = session.exec(
            select(sql.max(ModelVersion.annotation_counter)).where(
                ModelVersion.function_id == function.id, _trained_on_its_labels()
            )
        ).one()
    return function.annotation_counter - (trained or 0)


def _trained_on_its_labels() -> ColumnElement[bool]:
    """The versions after which a function's labels count as trained on: all but a rejected
    tuned challenger, which leaves the serving frozen head as it was (a frozen retrain stays
    due), while the scheduler's next tune waits for annotations to grow
    (:func:`service.finetune.finetune_due`)."""
    return or_(col(ModelVersion.head) != TUNED_HEAD, col(ModelVersion.status) != "rejected")

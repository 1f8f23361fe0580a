"""Training, champion/challenger deploy decisions, rollback, and the scheduled retrain check."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np
from sqlalchemy import func as sql
from sqlmodel import Session, select

from learner import (
    ArtifactCorrupt,
    ArtifactNotFound,
    Candidate,
    Deployed,
    NotEnoughData,
    TextPrior,
    TrainResult,
    cross_validated_predictions,
    train_head,
)
from learner.champion import (
    Comparison,
    DeployDecision,
    compare_on,
    count_flips,
    decide,
    decide_over_zero_shot,
    predicted_labels,
)
from service.capture import rebuild_index
from service.errors import Conflict, NotFound
from service.functions import get_function
from service.labelled import LabelledData, aware_utc, labelled_data
from service.runtime import Runtime
from service.suspects import labels_changed_since, queue_suspects_safely
from service.zero_shot import (
    ZERO_SHOT_VERSION,
    ensure_zero_shot,
    is_zero_shot,
    rebuild_zero_shot,
    text_prior,
)
from store import (
    Function,
    ModelVersion,
    Sample,
    session_scope,
    shared_lock,
    utcnow,
)

log = logging.getLogger("winnow.training")

# Fewest samples a comparison basis needs before it may reject a challenger.
MIN_COMPARISON_SAMPLES = 10


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
                run.outcome = record.status  # deployed or rejected
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
        champion_row = _deployed_row(session, function)
    counter = function.annotation_counter
    data = labelled_data(rt, function_id)
    if len(set(data.names)) < 2:
        raise NotEnoughData(
            f"training needs labelled samples of at least 2 labels; function {function_id} "
            f"has {len(data.names)} labelled sample(s) in {len(set(data.names))} label(s)"
        )
    rt.training.phase(function_id, "training")
    prior = text_prior(rt, function)  # a text tower adds the few-shot family to the candidates
    result = train_head(data.vectors, data.names, text_prior=prior)
    rt.training.phase(function_id, "comparing")
    if is_zero_shot(champion_row):
        decision = _decide_over_zero_shot(rt, function, result, data)
    else:
        decision = _decide(rt, rt.heads.get(function_id), champion_row, result, data, prior)
    if function.pinned and function.deployed_version is not None:
        decision = replace(
            decision,
            deploy=False,
            reason=f"function is pinned to version {function.deployed_version}; "
            f"not promoted ({decision.reason})",
        )
    rt.training.phase(function_id, "saving")
    version = _next_version(rt, function_id)
    label_counts = dict(Counter(data.names))
    meta = {"backbone": function.backbone, "labels": result.labels, "label_counts": label_counts}
    artifact_sha256 = rt.models.save(function_id, version, result.head, meta)
    rt.training.phase(function_id, "deploying")
    with rt.deploy_locks[function_id]:
        with session_scope(rt.engine) as session:
            function = get_function(session, function_id)
            record = ModelVersion(
                function_id=function_id,
                version=version,
                status="deployed" if decision.deploy else "rejected",
                backbone=function.backbone,
                head=result.candidate_name,
                params=dict(result.params),
                metrics=result.metrics,
                labels=list(result.labels),
                sample_count=result.n_samples,
                annotation_counter=counter,
                train_seconds=result.train_seconds,
                parent_version=function.deployed_version,
                labels_changed=labels_changed_since(session, function),
                decision=decision.to_dict(),
                trigger=trigger,
                artifact_sha256=artifact_sha256,
            )
            session.add(record)
            if decision.deploy:
                _make_current(session, function, record)
            session.flush()
            session.refresh(record)
        if decision.deploy:  # after the commit: memory never serves an unrecorded version
            _serve(rt, function_id, version, result.head, label_counts)
    queue_suspects_safely(rt, function_id, result, data, version)
    rt.training.trained(function_id, version)
    log.info("function %s: version %d %s: %s", function_id, version, record.status, decision.reason)
    return record


def _decide(
    rt: Runtime,
    champion: Deployed | None,
    champion_row: ModelVersion | None,
    result: TrainResult,
    data: LabelledData,
    prior: TextPrior | None = None,
) -> DeployDecision:
    tolerance = rt.settings.deploy_tolerance
    if champion is None or champion_row is None:
        return DeployDecision(
            deploy=True, reason="first model of this function", tolerance=tolerance
        )
    truth = np.asarray(data.names, dtype=object)
    champion_pred = predicted_labels(champion.head, data.vectors)
    trained_at = aware_utc(champion_row.created_at)
    unseen = np.array(
        [bool(at and trained_at and at > trained_at) for at in data.annotated_at], dtype=bool
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
        _same_folds(champion_row, result, data, truth, prior),
    ]
    decision = decide(comparisons, tolerance=tolerance, min_samples=MIN_COMPARISON_SAMPLES)
    flips = count_flips(champion.head, result.head, data.vectors)
    return replace(decision, flips=flips, flip_rate=flips / max(1, len(truth)))


def _decide_over_zero_shot(
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
    truth = np.asarray(data.names, dtype=object)
    zero_shot_pred = predicted_labels(zero_shot.head, data.vectors)
    every = np.ones(len(truth), dtype=bool)
    comparisons = [
        compare_on(
            basis, mask, truth=truth, challenger_pred=result.oof_pred, champion_pred=zero_shot_pred
        )
        for basis, mask in (("holdout", data.from_random_slice), ("all_samples", every))
    ]
    decision = decide_over_zero_shot(comparisons, min_samples=MIN_COMPARISON_SAMPLES)
    flips = count_flips(zero_shot.head, result.head, data.vectors)
    return replace(decision, flips=flips, flip_rate=flips / max(1, len(truth)))


def _same_folds(
    champion_row: ModelVersion,
    result: TrainResult,
    data: LabelledData,
    truth: np.ndarray,
    prior: TextPrior | None = None,
) -> Comparison:
    """The champion's recipe cross-validated on the challenger's folds, with today's labels."""
    recipe = Candidate(champion_row.head, dict(champion_row.params), prior=prior)
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


def deploy_version(rt: Runtime, function_id: str, version: int, *, pin: bool) -> ModelVersion:
    """Serve ``version`` now (roll back or forward); ``pin`` stops automatic promotion.

    Version 0 whose artifact is missing or unusable is built again from the labels.
    """
    with rt.deploy_locks[function_id]:
        with session_scope(rt.engine) as session:
            function = get_function(session, function_id)
            record = version_row(session, function_id, version)
        try:
            head, meta = rt.models.load(function_id, version, sha256=record.artifact_sha256)
        except (ArtifactNotFound, ArtifactCorrupt) as exc:
            if version != ZERO_SHOT_VERSION:
                raise Conflict(f"version {version} cannot be deployed: {exc}") from exc
            log.warning("function %s: rebuilding version 0 from its labels: %s", function_id, exc)
            head, meta = rebuild_zero_shot(rt, function), {}
        with session_scope(rt.engine) as session:
            function = get_function(session, function_id)
            record = version_row(session, function_id, version)
            if function.deployed_version != version:
                _make_current(session, function, record)
            function.pinned = pin
            session.add(function)
        _serve(rt, function_id, version, head, meta.get("label_counts", {}))
    return record


def set_pinned(rt: Runtime, function_id: str, pinned: bool) -> Function:
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
        if pinned and function.deployed_version is None:
            raise Conflict(f"function {function_id} has no deployed version to pin")
        function.pinned = pinned
        session.add(function)
    return function


def _make_current(session: Session, function: Function, record: ModelVersion) -> None:
    current = _deployed_row(session, function)
    if current is not None and current.version != record.version:
        current.status = "retired"
        session.add(current)
    record.status = "deployed"
    record.deployed_at = utcnow()
    function.deployed_version = record.version
    session.add(record)
    session.add(function)


def _serve(
    rt: Runtime, function_id: str, version: int, head: Any, label_counts: dict[str, int]
) -> None:
    rt.capture.set_label_counts(function_id, label_counts)
    rt.heads.swap(function_id, Deployed.of(version, head))


def _deployed_row(session: Session, function: Function) -> ModelVersion | None:
    if function.deployed_version is None:
        return None
    return session.exec(
        select(ModelVersion).where(
            ModelVersion.function_id == function.id,
            ModelVersion.version == function.deployed_version,
        )
    ).first()


def version_row(session: Session, function_id: str, version: int) -> ModelVersion:
    row = session.exec(
        select(ModelVersion).where(
            ModelVersion.function_id == function_id, ModelVersion.version == version
        )
    ).first()
    if row is None:
        raise NotFound(f"function {function_id} has no model version {version}")
    return row


def _next_version(rt: Runtime, function_id: str) -> int:
    with session_scope(rt.engine) as session:
        latest = session.exec(
            select(sql.max(ModelVersion.version)).where(ModelVersion.function_id == function_id)
        ).one()
    # A crash after writing an artifact but before recording it leaves a file the database does
    # not know; never reuse its number.
    return max(latest or 0, *rt.models.versions(function_id), 0) + 1


def load_deployed(rt: Runtime, function: Function) -> bool:
    """Serve the function's deployed version from its artifact (at start, or when another
    replica deployed a new one); False if the artifact cannot be loaded (logged)."""
    version = function.deployed_version
    if version is None:
        rt.heads.remove(function.id)
        return True
    with session_scope(rt.engine) as session:
        row = _deployed_row(session, function)
    try:
        head, meta = rt.models.load(
            function.id, version, sha256=row.artifact_sha256 if row else None
        )
    except (ArtifactNotFound, ArtifactCorrupt) as exc:
        log.error(
            "function %s: deployed version %d cannot be loaded: %s", function.id, version, exc
        )
        return False
    _serve(rt, function.id, version, head, meta.get("label_counts", {}))
    return True


def follow_deployed(rt: Runtime, function: Function) -> None:
    """Serve the version the database names, if this process serves another one.

    ``function`` is a row read moments ago; when its deployed version differs from the one in
    memory (another replica deployed, rolled back or trained), the row is read again under the
    deploy lock, so a deploy this process is making meanwhile is never undone by a stale read.
    The capture index is rebuilt too: the samples the new version learnt from, and the queue
    items, may have come through other replicas.
    """
    if _served_version(rt, function.id) == function.deployed_version:
        return
    with rt.deploy_locks[function.id]:
        with session_scope(rt.engine) as session:
            current = session.get(Function, function.id)
        if current is None or _served_version(rt, function.id) == current.deployed_version:
            return  # deleted, or this process deployed it meanwhile
        if load_deployed(rt, current):
            rebuild_index(rt, function.id)


def _served_version(rt: Runtime, function_id: str) -> int | None:
    deployed = rt.heads.get(function_id)
    return None if deployed is None else deployed.version


def retrain_check(rt: Runtime) -> None:
    """The scheduler's tick: follow deploys made elsewhere, retrain functions that are due."""
    with session_scope(rt.engine) as session:
        functions = session.exec(select(Function)).all()
        trained_counters = dict(
            session.exec(
                select(ModelVersion.function_id, sql.max(ModelVersion.annotation_counter)).group_by(
                    ModelVersion.function_id
                )
            ).all()
        )
    for function in functions:
        follow_deployed(rt, function)
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


def _settling(rt: Runtime, function_id: str) -> float:
    """Seconds until the function's annotations count as settled (``retrain_debounce`` after the
    last one, read from the database, so annotations made through other replicas count too)."""
    with session_scope(rt.engine) as session:
        last = aware_utc(
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
                ModelVersion.function_id == function.id
            )
        ).one()
    return function.annotation_counter - (trained or 0)

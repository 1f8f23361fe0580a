"""Deploys: serving a version (rollback, pin), loading the deployed one, following replicas."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import func as sql
from sqlmodel import Session, select

from learner import ArtifactCorrupt, ArtifactNotFound, Deployed
from learner.champion import DeployDecision
from service.capture import rebuild_index
from service.errors import Conflict, NotFound
from service.functions import get_function
from service.presets import is_preset, rebuild_preset
from service.runtime import Runtime
from service.spaces import move_space
from service.suspects import labels_changed_since
from service.zero_shot import ZERO_SHOT_VERSION, rebuild_zero_shot
from store import Function, ModelVersion, session_scope, utcnow

log = logging.getLogger("winnow.training")


def deploy_version(rt: Runtime, function_id: str, version: int, *, pin: bool) -> ModelVersion:
    """Serve ``version`` now (roll back or forward); ``pin`` stops automatic promotion.

    Version 0 whose artifact is missing or unusable is built again: from the labels (zero-shot)
    or from its row (a preset).
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
            log.warning("function %s: rebuilding version 0: %s", function_id, exc)
            if is_preset(record):
                head, meta = rebuild_preset(rt, function, record), {}
            else:
                head, meta = rebuild_zero_shot(rt, function), {}

        def flip(session: Session, function: Function) -> ModelVersion:
            record = version_row(session, function_id, version)
            if function.deployed_version != version:
                make_current(session, function, record)
            function.pinned = pin
            session.add(function)
            return record

        with session_scope(rt.engine) as session:
            function = get_function(session, function_id)
            moving = function.vector_space != record.vector_space
            if not moving:
                record = flip(session, function)
        if moving:
            # a version of a tuned space is served with the tower that embeds it
            tail = head if record.vector_space is not None else None
            record = move_space(rt, function_id, record.vector_space, tail, flip)
        serve(rt, function_id, version, head, meta.get("label_counts", {}))
    return record


def set_pinned(rt: Runtime, function_id: str, pinned: bool) -> Function:
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
        if pinned and function.deployed_version is None:
            raise Conflict(f"function {function_id} has no deployed version to pin")
        function.pinned = pinned
        session.add(function)
    return function


def make_current(session: Session, function: Function, record: ModelVersion) -> None:
    current = deployed_row(session, function)
    if current is not None and current.version != record.version:
        current.status = "retired"
        session.add(current)
    record.status = "deployed"
    record.deployed_at = utcnow()
    function.deployed_version = record.version
    session.add(record)
    session.add(function)


def serve(
    rt: Runtime, function_id: str, version: int, head: Any, label_counts: dict[str, int]
) -> None:
    rt.capture.set_label_counts(function_id, label_counts)
    rt.heads.swap(function_id, Deployed.of(version, head))
    rt.serving.invalidate(function_id)  # the next invoke serves it


def deployed_row(session: Session, function: Function) -> ModelVersion | None:
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


def load_deployed(rt: Runtime, function: Function) -> bool:
    """Serve the function's deployed version from its artifact (at start, or when another
    replica deployed a new one); False if the artifact cannot be loaded (logged)."""
    version = function.deployed_version
    if version is None:
        rt.heads.remove(function.id)
        rt.serving.invalidate(function.id)
        return True
    with session_scope(rt.engine) as session:
        row = deployed_row(session, function)
    try:
        head, meta = rt.models.load(
            function.id, version, sha256=row.artifact_sha256 if row else None
        )
    except (ArtifactNotFound, ArtifactCorrupt) as exc:
        log.error(
            "function %s: deployed version %d cannot be loaded: %s", function.id, version, exc
        )
        return False
    serve(rt, function.id, version, head, meta.get("label_counts", {}))
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


def next_version(rt: Runtime, function_id: str) -> int:
    """The number the function's next trained version gets."""
    with session_scope(rt.engine) as session:
        latest = session.exec(
            select(sql.max(ModelVersion.version)).where(ModelVersion.function_id == function_id)
        ).one()
    # A crash after writing an artifact but before recording it leaves a file the database does
    # not know; never reuse its number.
    return max(latest or 0, *rt.models.versions(function_id), 0) + 1


def record_version(
    rt: Runtime,
    function_id: str,
    model: Any,
    decision: DeployDecision,
    *,
    labels: list[str],
    label_counts: dict[str, int],
    vector_space: int | None = None,
    own_space: bool = False,
    **fields: Any,
) -> ModelVersion:
    """Save ``model`` (what the version serves) as the function's next version and record it,
    deployed (and served here) when ``decision`` says so and the function is not pinned;
    ``fields``: the rest of its :class:`ModelVersion` row.

    ``vector_space``: the space of the vectors the head was trained on (the function's when its
    training read them); ``own_space``: the version answers from its own tower's features (a
    tuned version), so its space is its own number. A head trained in a space the function's
    vectors have left meanwhile is recorded but not deployed; deploying a version of another
    space moves the function's vectors into it first (:func:`service.spaces.move_space`).

    The artifact is durable before the database names it, and memory serves the version only
    after the commit, so a crash at any point leaves the previous version serving.
    """
    rt.training.phase(function_id, "saving")
    version = next_version(rt, function_id)
    space = version if own_space else vector_space
    with session_scope(rt.engine) as session:
        backbone = get_function(session, function_id).backbone
    meta = {"backbone": backbone, "labels": labels, "label_counts": label_counts}
    artifact_sha256 = rt.models.save(function_id, version, model, meta)
    rt.training.phase(function_id, "deploying")

    def write(session: Session, function: Function) -> ModelVersion:
        final = decision
        if function.pinned and function.deployed_version is not None:
            final = final.pinned_to(function.deployed_version)
        if not own_space and space != function.vector_space:
            final = final.moved_from(space)
        record = ModelVersion(
            function_id=function_id,
            version=version,
            status="deployed" if final.deploy else "rejected",
            backbone=function.backbone,
            labels=labels,
            parent_version=function.deployed_version,
            labels_changed=labels_changed_since(session, function),
            decision=final.to_dict(),
            artifact_sha256=artifact_sha256,
            vector_space=space,
            **fields,
        )
        session.add(record)
        if final.deploy:
            make_current(session, function, record)
        session.flush()
        session.refresh(record)
        return record

    def write_moved(session: Session, function: Function) -> ModelVersion:
        record = write(session, function)
        if record.status != "deployed":  # pinned meanwhile: the vectors stay where they are
            raise _NotDeployed
        return record

    with rt.deploy_locks[function_id]:
        with session_scope(rt.engine) as session:
            function = get_function(session, function_id)
            moving = (
                decision.deploy
                and own_space
                and not function.pinned
                and function.vector_space != space
            )
            if not moving:
                record = write(session, function)
        if moving:
            try:
                record = move_space(rt, function_id, space, model, write_moved)
            except _NotDeployed:
                with session_scope(rt.engine) as session:
                    record = write(session, get_function(session, function_id))
        if record.status == "deployed":  # after the commit: memory never serves an unrecorded one
            serve(rt, function_id, version, model, label_counts)
    rt.training.trained(function_id, version)
    return record


class _NotDeployed(Exception):
    """A version that was to move its function's vectors was recorded undeployed after all."""

"""Training a function's head and deploying it."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
from sqlalchemy import func as sql
from sqlmodel import col, select

from api.runtime import Runtime
from api.services.functions import get_function
from learner import ArtifactCorrupt, ArtifactNotFound, Deployed, NotEnoughData, train_head
from store import Function, Label, ModelVersion, Sample, session_scope, utcnow, vector_from_bytes

log = logging.getLogger("winnow.training")


def labelled_data(rt: Runtime, function_id: str) -> tuple[np.ndarray, list[str]]:
    """Every labelled sample's vector and label name, in a stable order."""
    with session_scope(rt.engine) as session:
        rows = session.exec(
            select(Sample.embedding, Label.name)
            .join(Label, col(Sample.label_id) == Label.id)
            .where(Sample.function_id == function_id)
            .order_by(col(Sample.created_at), col(Sample.id))
        ).all()
    if not rows:
        return np.zeros((0, 0), dtype=np.float32), []
    vectors = np.stack([vector_from_bytes(embedding) for embedding, _ in rows])
    return vectors, [name for _, name in rows]


def train_function(rt: Runtime, function_id: str, *, trigger: str = "manual") -> ModelVersion:
    """Train with model selection on all labelled samples, save the artifact, deploy it.

    The artifact is durable before the database names it as deployed, and the in-memory head is
    swapped last, so a crash at any point leaves the previous version serving.
    """
    with rt.training_locks[function_id]:
        with session_scope(rt.engine) as session:
            function = get_function(session, function_id)
            counter = function.annotation_counter
        vectors, names = labelled_data(rt, function_id)
        if len(set(names)) < 2:
            raise NotEnoughData(
                f"training needs labelled samples of at least 2 labels; function {function_id} "
                f"has {len(names)} labelled sample(s) in {len(set(names))} label(s)"
            )
        result = train_head(vectors, names)
        with session_scope(rt.engine) as session:
            latest = session.exec(
                select(sql.max(ModelVersion.version)).where(ModelVersion.function_id == function_id)
            ).one()
        # A crash after writing an artifact but before recording it leaves a file the database does
        # not know; never reuse its number.
        version = max(latest or 0, *rt.models.versions(function_id), 0) + 1
        meta = {
            "backbone": function.backbone,
            "labels": list(result.labels),
            "version": version,
            "label_counts": dict(Counter(names)),
        }
        rt.models.save(function_id, version, result.head, meta)
        with session_scope(rt.engine) as session:
            function = get_function(session, function_id)
            record = ModelVersion(
                function_id=function_id,
                version=version,
                status="deployed",
                backbone=function.backbone,
                head=result.candidate_name,
                params=dict(result.candidate.params),
                metrics=result.metrics,
                labels=list(result.labels),
                sample_count=result.n_samples,
                annotation_counter=counter,
                train_seconds=result.train_seconds,
                parent_version=function.deployed_version,
                decision={"deployed": True, "reason": "trained on request"},
                trigger=trigger,
                deployed_at=utcnow(),
            )
            _retire_current(session, function)
            function.deployed_version = version
            session.add(function)
            session.add(record)
        rt.capture.set_label_counts(function_id, dict(Counter(names)))
        rt.heads.swap(function_id, Deployed.of(version, result.head))
        log.info(
            "function %s: deployed version %d (%s)", function_id, version, result.candidate_name
        )
        return record


def _retire_current(session, function: Function) -> None:  # type: ignore[no-untyped-def]
    if function.deployed_version is None:
        return
    current = session.exec(
        select(ModelVersion).where(
            ModelVersion.function_id == function.id,
            ModelVersion.version == function.deployed_version,
        )
    ).first()
    if current is not None:
        current.status = "retired"
        session.add(current)


def load_deployed(rt: Runtime, function: Function) -> None:
    """Load the function's deployed artifact into memory (used at start)."""
    version = function.deployed_version
    if version is None:
        return
    try:
        head, meta = rt.models.load(function.id, version)
    except (ArtifactNotFound, ArtifactCorrupt) as exc:
        log.error(
            "function %s: deployed version %d cannot be loaded: %s", function.id, version, exc
        )
        return
    rt.capture.set_label_counts(function.id, meta.get("label_counts", {}))
    rt.heads.swap(function.id, Deployed.of(version, head))

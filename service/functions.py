"""Functions and labels."""

from __future__ import annotations

from sqlalchemy import func as sql
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from capture import CapturePolicy
from learner import ZERO_SHOT_HEAD
from service.errors import Conflict, NotFound, Unprocessable
from service.presets import create_preset_function
from service.runtime import Runtime
from service.schemas import FunctionPublic
from service.zero_shot import labels_changed
from store import (
    Function,
    Label,
    ModelVersion,
    NovelMark,
    ReviewItem,
    Sample,
    TrafficVector,
    find_label,
    normalize_label_name,
    session_scope,
)
from store import annotation_label as store_annotation_label


def create_function(
    rt: Runtime,
    *,
    name: str,
    labels: list[str],
    backbone: str | None,
    preset: str | None = None,
) -> Function:
    """Create a function pinned to ``backbone`` (default: the service's), with optional labels;
    with a ``preset``, version 0 is that pretrained classifier, restricted to ``labels`` if any
    (:mod:`service.presets`)."""
    try:
        spec = rt.encoders.resolve(backbone)
    except ValueError as exc:  # not a backbone spec at all
        raise Unprocessable(str(exc)) from exc
    names = [normalize_label_name(n) for n in labels]
    if len(set(names)) != len(names):
        raise Unprocessable("label names must be unique")
    if preset is not None:
        function = create_preset_function(rt, name=name, spec=spec, preset=preset, labels=names)
        with session_scope(rt.engine) as session:
            return get_function(session, function.id)
    with session_scope(rt.engine) as session:
        function = Function(name=name.strip(), backbone=spec)
        session.add(function)
        session.flush()
        for label_name in names:
            session.add(Label(function_id=function.id, name=label_name))
    labels_changed(rt, function.id)  # with a text tower, version 0 serves from now on
    with session_scope(rt.engine) as session:
        return get_function(session, function.id)


def get_function(session: Session, function_id: str) -> Function:
    function = session.get(Function, function_id)
    if function is None:
        raise NotFound(f"function {function_id} not found")
    return function


def visible_functions(session: Session, tenant: str | None) -> list[Function]:
    """The functions a key of ``tenant`` sees (None: a global key sees every one), oldest first."""
    query = select(Function).order_by(col(Function.created_at))
    if tenant is not None:
        query = query.where(Function.id == tenant)
    return list(session.exec(query).all())


def list_labels(session: Session, function_id: str) -> list[Label]:
    """The function's labels, oldest first (404 for a missing function)."""
    get_function(session, function_id)
    return list(
        session.exec(
            select(Label).where(Label.function_id == function_id).order_by(col(Label.created_at))
        ).all()
    )


def label_ids_by_name(session: Session, function_id: str) -> dict[str, str]:
    """Label name -> id: heads name their classes by label name, responses also give the id."""
    return {
        label.name: label.id
        for label in session.exec(select(Label).where(Label.function_id == function_id))
    }


def function_public(session: Session, function: Function) -> FunctionPublic:
    labels = session.exec(
        select(sql.count()).select_from(Label).where(Label.function_id == function.id)
    ).one()
    samples = session.exec(
        select(sql.count()).select_from(Sample).where(Sample.function_id == function.id)
    ).one()
    return FunctionPublic.model_validate(
        {**function.model_dump(), "label_count": labels, "sample_count": samples}
    )


def delete_function(rt: Runtime, function_id: str) -> None:
    """Delete a function with its labels, samples, review items, traffic sample, models and
    unshared blobs."""
    with session_scope(rt.engine) as session:
        get_function(session, function_id)
        blobs = set(session.exec(select(Sample.blob).where(Sample.function_id == function_id)))
        blobs |= set(
            session.exec(select(ReviewItem.blob).where(ReviewItem.function_id == function_id))
        )
        for table in (NovelMark, TrafficVector, Sample, ReviewItem, ModelVersion, Label):
            session.exec(delete(table).where(col(table.function_id) == function_id))  # type: ignore[attr-defined]
        session.exec(delete(Function).where(col(Function.id) == function_id))
    rt.serving.remove(function_id)
    rt.heads.remove(function_id)
    rt.indexes.drop(function_id)
    rt.capture.drop(function_id)
    rt.novelty.drop(function_id)
    rt.novel_traffic.drop(function_id)
    rt.traffic_sample.drop(function_id)
    rt.models.delete_function(function_id)
    delete_unreferenced_blobs(rt, blobs)


def delete_unreferenced_blobs(rt: Runtime, digests: set[str]) -> None:
    """Blobs are shared across rows by content; delete only those no row references any more."""
    if not digests:
        return
    with session_scope(rt.engine) as session:
        still = set(session.exec(select(Sample.blob).where(col(Sample.blob).in_(digests))))
        still |= set(session.exec(select(ReviewItem.blob).where(col(ReviewItem.blob).in_(digests))))
    for digest in digests - still:
        rt.blobs.delete(digest)


def may_create_labels(function: Function) -> bool:
    """Whether an annotation (a review's, a sample upload's, an annotation update's, Nyckel's
    included) may name a label the function lacks, creating it: the capture policy's
    ``allowNewLabels``, whatever the key. With it off, labels are made only on purpose: with the
    function, or through the labels endpoints (admin keys)."""
    return CapturePolicy.from_dict(function.capture_policy or {}).allow_new_labels


def annotation_label(session: Session, function_id: str, name: str) -> Label:
    """The label an annotation names, created if missing where :func:`may_create_labels` allows
    it (:class:`store.LabelNotAllowed`, a 422, otherwise)."""
    may_create = may_create_labels(get_function(session, function_id))
    return store_annotation_label(session, function_id, name, may_create=may_create)


def create_label(
    session: Session, function_id: str, *, name: str, description: str | None = None
) -> Label:
    name = normalize_label_name(name)
    existing = find_label(session, function_id, name)
    if existing is not None:
        raise Conflict(f"label {name!r} already exists in function {function_id}")
    label = Label(function_id=function_id, name=name, description=description)
    session.add(label)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create won the race
        raise Conflict(f"label {name!r} already exists in function {function_id}") from exc
    return label


def get_label(session: Session, function_id: str, label_id: str) -> Label:
    get_function(session, function_id)
    label = session.get(Label, label_id)
    if label is None or label.function_id != function_id:
        raise NotFound(f"label {label_id} not found in function {function_id}")
    return label


def update_label(
    rt: Runtime, function_id: str, label_id: str, *, name: str, description: str | None
) -> Label:
    """Rename or describe a label. Model versions name their classes by label name, so a label
    that one of them learnt keeps its name (409): renaming it would orphan the model's class."""
    name = normalize_label_name(name)
    with session_scope(rt.engine) as session:
        label = get_label(session, function_id, label_id)
        if name != label.name:
            _ensure_unused_by_models(session, label, "renamed")
            if find_label(session, function_id, name) is not None:
                raise Conflict(f"label {name!r} already exists in function {function_id}")
        label.name, label.description = name, description
        session.add(label)
        try:
            session.flush()
        except IntegrityError as exc:  # a concurrent create or rename won the race
            raise Conflict(f"label {name!r} already exists in function {function_id}") from exc
    labels_changed(rt, function_id)
    return label


def delete_label(rt: Runtime, function_id: str, label_id: str) -> None:
    """Delete a label that nothing uses yet: no sample or review item is annotated with it and no
    model version learnt it (409 otherwise, saying which)."""
    with session_scope(rt.engine) as session:
        label = get_label(session, function_id, label_id)
        _ensure_unused_by_models(session, label, "deleted")
        for table in (Sample, ReviewItem):
            used = session.exec(
                select(sql.count()).select_from(table).where(table.label_id == label.id)  # type: ignore[attr-defined]
            ).one()
            if used:
                raise Conflict(
                    f"label {label.name!r} annotates {used} {table.__name__.lower()}(s); "
                    "annotate them otherwise first"
                )
        session.delete(label)
    labels_changed(rt, function_id)


def _ensure_unused_by_models(session: Session, label: Label, action: str) -> None:
    versions = session.exec(  # version 0 (zero-shot) is rebuilt from the labels: not counted
        select(ModelVersion.version, ModelVersion.labels).where(
            ModelVersion.function_id == label.function_id, ModelVersion.head != ZERO_SHOT_HEAD
        )
    ).all()
    learnt = sorted(version for version, names in versions if label.name in names)
    if learnt:
        raise Conflict(
            f"label {label.name!r} cannot be {action}: model version(s) "
            f"{', '.join(map(str, learnt))} predict it by name"
        )

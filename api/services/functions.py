"""Functions and labels."""

from __future__ import annotations

from sqlalchemy import func as sql
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from api.errors import Conflict, NotFound, Unprocessable
from api.runtime import Runtime
from api.schemas import FunctionPublic
from store import Function, Label, ModelVersion, ReviewItem, Sample, find_label, session_scope


def create_function(rt: Runtime, *, name: str, labels: list[str], backbone: str | None) -> Function:
    """Create a function pinned to ``backbone`` (default: the service's), with optional labels."""
    try:
        spec = rt.encoders.resolve(backbone)
    except ValueError as exc:  # not a backbone spec at all
        raise Unprocessable(str(exc)) from exc
    names = [n.strip() for n in labels]
    if any(not n for n in names):
        raise Unprocessable("label names must not be empty")
    if len(set(names)) != len(names):
        raise Unprocessable("label names must be unique")
    with session_scope(rt.engine) as session:
        function = Function(name=name.strip(), backbone=spec)
        session.add(function)
        session.flush()
        for label_name in names:
            session.add(Label(function_id=function.id, name=label_name))
    return function


def get_function(session: Session, function_id: str) -> Function:
    function = session.get(Function, function_id)
    if function is None:
        raise NotFound(f"function {function_id} not found")
    return function


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
    """Delete a function with its labels, samples, review items, models and unshared blobs."""
    with session_scope(rt.engine) as session:
        get_function(session, function_id)
        blobs = set(session.exec(select(Sample.blob).where(Sample.function_id == function_id)))
        blobs |= set(
            session.exec(select(ReviewItem.blob).where(ReviewItem.function_id == function_id))
        )
        for table in (Sample, ReviewItem, ModelVersion, Label):
            session.exec(delete(table).where(col(table.function_id) == function_id))  # type: ignore[attr-defined]
        session.exec(delete(Function).where(col(Function.id) == function_id))
    rt.heads.remove(function_id)
    rt.indexes.drop(function_id)
    rt.capture.drop(function_id)
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


def create_label(
    session: Session, function_id: str, *, name: str, description: str | None = None
) -> Label:
    name = name.strip()
    if not name:
        raise Unprocessable("label name must not be empty")
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

"""Label look-ups and labelling a sample, shared by uploads and the review queue."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from store.tables import Function, Label, Sample, utcnow


class EmptyLabelName(ValueError):
    """A label name that is empty after trimming white space."""

    def __init__(self) -> None:
        super().__init__("label name must not be empty")


def find_label(session: Session, function_id: str, name: str) -> Label | None:
    return session.exec(
        select(Label).where(Label.function_id == function_id, Label.name == name.strip())
    ).first()


def get_or_create_label(session: Session, function_id: str, name: str) -> Label:
    """The label called ``name``, created if missing (safe against a concurrent create)."""
    label = find_label(session, function_id, name)
    if label is not None:
        return label
    name = name.strip()
    if not name:
        raise EmptyLabelName()
    try:
        with session.begin_nested():
            label = Label(function_id=function_id, name=name)
            session.add(label)
    except IntegrityError:
        label = find_label(session, function_id, name)
        if label is None:
            raise
    return label


def label_sample(session: Session, sample: Sample, label: Label) -> bool:
    """Give ``sample`` the label; counts an annotation event for retraining. False if unchanged."""
    if sample.label_id == label.id:
        return False
    _set_label(session, sample, label.id)
    return True


def unlabel_sample(session: Session, sample: Sample) -> bool:
    """Remove ``sample``'s label; counts an annotation event for retraining. False if unlabelled."""
    if sample.label_id is None:
        return False
    _set_label(session, sample, None)
    return True


def _set_label(session: Session, sample: Sample, label_id: str | None) -> None:
    now = utcnow()
    if sample.label_id is not None:  # a change, not a first label: the model history counts it
        sample.label_changed_at = now
    sample.label_id = label_id
    sample.annotated_at = now
    session.add(sample)
    function = session.get(Function, sample.function_id)
    if function is not None:
        function.annotation_counter += 1
        session.add(function)

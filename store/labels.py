"""Label names, label look-ups and labelling a sample, shared by uploads and the review queue."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from store.tables import Function, Label, LabelEvent, Sample, utcnow

# The paths a label changes through, as the label history names them.
Via = Literal[
    "review", "consensus", "weighted", "dispute", "suspect", "sample_api", "nyckel", "import"
]
VIAS: tuple[str, ...] = get_args(Via)

# Unicode categories a label name may not hold: names are shown in pages, charts, logs, CSV
# manifests and folder names, where these move, hide or restyle the text around them. The zero-width
# joiner and non-joiner (format characters too) stay allowed: emoji sequences (👩‍💻) and Persian and
# Indic spellings need them.
_REFUSED_CATEGORIES = {
    "Cc": "a control character (a newline, tab or terminal escape)",
    "Cf": "an invisible format character (a direction override or zero-width space)",
    "Cs": "a lone surrogate",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


_JOINERS = {"\u200c", "\u200d"}


class InvalidLabelName(ValueError):
    """A label name the naming rules refuse; the message says which rule."""


class EmptyLabelName(InvalidLabelName):
    """A label name that is empty after trimming white space."""

    def __init__(self) -> None:
        super().__init__("label name must not be empty")


class LabelNotAllowed(ValueError):
    """An annotation names a label the function lacks, and the caller may not create labels."""


class InvalidReviewerName(ValueError):
    """A reviewer's name (a key's reviewer, an import's annotatedBy) the naming rules refuse."""


# Longest reviewer name: as long as a label name may be.
MAX_REVIEWER_NAME = 200


def normalize_label_name(name: str) -> str:
    """The form a label name is stored and looked up in: trimmed and NFC-normalised, so the
    composed and decomposed spellings of "café" are one label. Names stay case-sensitive ("Cat"
    and "cat" are two labels, as in Nyckel). Raises :class:`InvalidLabelName` for an empty name
    or one holding control, format or line-breaking characters."""
    name = unicodedata.normalize("NFC", name.strip())
    if not name:
        raise EmptyLabelName()
    problem = _refused_character(name)
    if problem is not None:
        raise InvalidLabelName(f"label name {name!r} holds {problem}")
    return name


def normalize_reviewer_name(name: str) -> str:
    """A reviewer's name in the form the label history records it, by the label names' rules:
    trimmed, NFC-normalised, case kept. Names are shown in pages and written into CSV manifests,
    so :class:`InvalidReviewerName` refuses an empty name, one over
    :data:`MAX_REVIEWER_NAME` characters, or one holding control, format or line-breaking
    characters."""
    name = unicodedata.normalize("NFC", name.strip())
    if not name:
        raise InvalidReviewerName("reviewer name must not be empty")
    if len(name) > MAX_REVIEWER_NAME:
        raise InvalidReviewerName(
            f"reviewer name is {len(name)} characters long; at most {MAX_REVIEWER_NAME}"
        )
    problem = _refused_character(name)
    if problem is not None:
        raise InvalidReviewerName(f"reviewer name {name!r} holds {problem}")
    return name


def _refused_character(name: str) -> str | None:
    """What is wrong with the first character a name may not hold, or None."""
    for position, char in enumerate(name):
        problem = _REFUSED_CATEGORIES.get(unicodedata.category(char))
        if problem is not None and char not in _JOINERS:
            return f"{problem}: U+{ord(char):04X} at position {position}"
    return None


def find_label(session: Session, function_id: str, name: str) -> Label | None:
    """The label called ``name`` (in any Unicode normal form), or None."""
    name = normalize_label_name(name)
    return session.exec(
        select(Label).where(Label.function_id == function_id, Label.name == name)
    ).first()


def get_or_create_label(session: Session, function_id: str, name: str) -> Label:
    """The label called ``name``, created if missing (safe against a concurrent create)."""
    label = find_label(session, function_id, name)
    if label is not None:
        return label
    name = normalize_label_name(name)
    try:
        with session.begin_nested():
            label = Label(function_id=function_id, name=name)
            session.add(label)
    except IntegrityError:
        label = find_label(session, function_id, name)
        if label is None:
            raise
    return label


def annotation_label(session: Session, function_id: str, name: str, *, may_create: bool) -> Label:
    """The label an annotation names, created if missing when ``may_create`` (the function's
    ``allowNewLabels``); :class:`LabelNotAllowed` otherwise. Every path that annotates (review,
    sample upload, annotation update, the Nyckel adapter) comes through here."""
    label = find_label(session, function_id, name)
    if label is not None:
        return label
    if not may_create:
        raise LabelNotAllowed(
            f"label {normalize_label_name(name)!r} does not exist in function {function_id} and "
            "its capture policy does not allow annotations to create labels (allowNewLabels); "
            "create the label first (admin key)"
        )
    return get_or_create_label(session, function_id, name)


@dataclass(frozen=True)
class LabelChange:
    """Who changes a label and through what: what the label history records of each change."""

    actors: tuple[str, ...]
    via: Via
    review_item_id: str | None = None

    def __post_init__(self) -> None:
        if self.via not in VIAS:
            raise ValueError(f"unknown label change path {self.via!r}; one of {', '.join(VIAS)}")


def label_sample(session: Session, sample: Sample, label: Label, change: LabelChange) -> bool:
    """Give ``sample`` the label; counts an annotation event for retraining and appends the change
    to the label history. False (and nothing written) if unchanged."""
    if sample.label_id == label.id:
        return False
    _set_label(session, sample, label, change)
    return True


def unlabel_sample(session: Session, sample: Sample, change: LabelChange) -> bool:
    """Remove ``sample``'s label, as :func:`label_sample` records it. False if unlabelled."""
    if sample.label_id is None:
        return False
    _set_label(session, sample, None, change)
    return True


def record_deletion(session: Session, sample: Sample, change: LabelChange) -> bool:
    """Append the end of a labelled sample's label to the history as the sample is deleted (the
    history outlives the sample). Nothing else changes: the caller deletes the row. False (and
    nothing written) for an unlabelled sample."""
    if sample.label_id is None:
        return False
    _append_event(session, sample, None, change, utcnow())
    return True


def _set_label(session: Session, sample: Sample, label: Label | None, change: LabelChange) -> None:
    now = utcnow()
    _append_event(session, sample, label, change, now)
    if sample.label_id is not None:  # a change, not a first label: the model history counts it
        sample.label_changed_at = now
    sample.label_id = label.id if label is not None else None
    sample.annotated_at = now
    session.add(sample)
    function = session.get(Function, sample.function_id)
    if function is not None:
        function.annotation_counter += 1
        session.add(function)


def _append_event(
    session: Session, sample: Sample, after: Label | None, change: LabelChange, at: datetime
) -> None:
    """The history row of ``sample`` going from its current label to ``after``."""
    before = session.get(Label, sample.label_id) if sample.label_id is not None else None
    session.add(
        LabelEvent(
            function_id=sample.function_id,
            sample_id=sample.id,
            at=at,
            label_before=before.name if before is not None else None,
            label_after=after.name if after is not None else None,
            actors=list(change.actors),
            via=change.via,
            review_item_id=change.review_item_id,
        )
    )

"""Mislabel suspects in the review queue: labelled samples whose label a training doubts.

Each training replaces the function's untouched suspects with its own findings, up to a budget
of pending suspects. A sample is never queued twice: not while a suspect item of it is pending or
skipped, not after a reviewer confirmed (or set) its label until that label changes, and not
after a reviewer discarded the suspicion while the sample keeps the label it had then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session, col, select

from store import Label, ReviewItem, Sample, lock_space, utcnow


@dataclass(frozen=True)
class Suspect:
    """One flagged sample, as a training found it.

    Attributes:
        sample_id: the labelled sample.
        given_label: its label name when the training read it.
        suggested_label: the label the detector finds more likely.
        label_quality: the detector's score in [0, 1]; near 0 = very likely wrong.
        suggested_confidence: the detector's probability of ``suggested_label``.
    """

    sample_id: str
    given_label: str
    suggested_label: str
    label_quality: float
    suggested_confidence: float


def queue_suspects(
    *,
    session: Session,
    function_id: str,
    suspects: Sequence[Suspect],
    budget: int,
    model_version: int | None,
) -> list[ReviewItem]:
    """Refresh the function's pending suspects from one training's findings.

    Pending suspect items the training no longer flags (or whose sample changed label or was
    deleted) are removed; those it flags again get its scores; new ones are added, most
    suspicious first, while fewer than ``budget`` suspects are pending.

    Args:
        session: an open session; the caller commits.
        function_id: the function trained.
        suspects: the training's findings, most suspicious first.
        budget: most pending suspect items at once (0 queues none).
        model_version: the version whose training found them.

    Returns:
        The items added.
    """
    lock_space(session, function_id)  # the items copy the samples' vectors
    found = {s.sample_id: s for s in suspects}
    samples = {
        sample.id: sample
        for sample in session.exec(select(Sample).where(col(Sample.id).in_(list(found)))).all()
    }
    label_names = dict(
        session.exec(select(Label.id, Label.name).where(Label.function_id == function_id)).all()
    )
    items = session.exec(
        select(ReviewItem).where(
            ReviewItem.function_id == function_id, ReviewItem.kind == "suspect"
        )
    ).all()
    pending = 0
    blocked: set[str] = set()
    for item in items:
        sample_id = item.sample_id or ""
        finding = found.get(sample_id)
        if item.status == "pending" and (
            finding is None or finding.given_label != item.given_label
        ):
            session.delete(item)  # untouched and no longer current: a stale suspicion
            continue
        if item.status == "pending" and finding is not None:
            _apply(item, finding, model_version)
            session.add(item)
            pending += 1
        if item.status in ("pending", "skipped") or (
            item.status == "discarded"
            and finding is not None
            and finding.given_label == item.given_label
        ):
            blocked.add(sample_id)
    added: list[ReviewItem] = []
    for suspect in suspects:
        if pending + len(added) >= budget:
            break
        sample = samples.get(suspect.sample_id)
        if sample is None or suspect.sample_id in blocked or sample.label_id is None:
            continue
        if label_names.get(sample.label_id) != suspect.given_label:
            continue  # relabelled while the training ran
        if sample.confirmed_label_id == sample.label_id:
            continue  # a reviewer confirmed this label
        item = ReviewItem(
            function_id=function_id,
            kind="suspect",
            blob=sample.blob,
            embedding=sample.embedding,
            sample_id=sample.id,
            reason="suspect",
            score=0.0,
        )
        _apply(item, suspect, model_version)
        session.add(item)
        added.append(item)
    return added


def _apply(item: ReviewItem, suspect: Suspect, model_version: int | None) -> None:
    """Write a finding onto an item. ``score`` is the suspicion (1 - label quality), so the
    queue's "highest score first" order shows the likeliest mistakes first."""
    item.given_label = suspect.given_label
    item.suggested_label = suspect.suggested_label
    item.predicted_label = suspect.suggested_label
    item.confidence = suspect.suggested_confidence
    item.model_version = model_version
    item.score = 1.0 - suspect.label_quality
    item.scores = {
        "labelQuality": suspect.label_quality,
        "suggestedConfidence": suspect.suggested_confidence,
    }
    item.updated_at = utcnow()


def drop_open_suspects(*, session: Session, sample_id: str) -> int:
    """Remove the pending or skipped suspect items of a sample (it is being deleted); returns
    how many. Reviewed ones stay as history."""
    items = session.exec(
        select(ReviewItem).where(
            ReviewItem.kind == "suspect",
            ReviewItem.sample_id == sample_id,
            col(ReviewItem.status).in_(("pending", "skipped")),
        )
    ).all()
    for item in items:
        session.delete(item)
    return len(items)

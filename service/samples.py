"""Samples: validated, embedded, stored images with optional labels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import func as sql
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from embeddings import InvalidImage, declared_pixels, decode_image
from embeddings.tuning import TunedTail
from learner import ArtifactCorrupt, ArtifactNotFound
from learner.finetune import TunedHead
from review_queue import drop_open_suspects, follow_relabel
from service.capture import index_labelled, unindex
from service.errors import Conflict, NotFound, ServiceUnavailable
from service.functions import annotation_label, delete_unreferenced_blobs, get_function
from service.runtime import Runtime
from service.schemas import AnnotationPublic, SamplePublic
from store import (
    Function,
    Label,
    LabelChange,
    LabelEvent,
    ModelVersion,
    ReviewItem,
    Sample,
    SpaceMoved,
    check_space,
    label_sample,
    lock_space,
    normalize_label_name,
    record_deletion,
    session_scope,
    unlabel_sample,
    vector_from_bytes,
    vector_to_bytes,
)

# Decoded pixels one encoder call holds at most (~300 MB as RGB): a batch of large images that a
# small compressed body can carry is embedded in several calls rather than all decoded at once.
DECODED_PIXELS_PER_CALL = 100_000_000
# Times a write embeds again when the function's vectors moved to another space meanwhile.
SPACE_RETRIES = 3


def embed_image(rt: Runtime, function: Function, data: bytes) -> np.ndarray:
    """Decode ``data`` safely and embed it with the function's pinned backbone."""
    (vector,) = embed_images(rt, function, [data])
    if isinstance(vector, InvalidImage):
        raise vector
    return vector


def embed_images(
    rt: Runtime, function: Function, images: Sequence[bytes]
) -> list[np.ndarray | InvalidImage]:
    """Decode each image safely and embed it in the function's vector space (``function``'s
    ``vector_space`` as read), in order; an image that cannot be decoded is its InvalidImage,
    the others are still embedded.

    Raises:
        ServiceUnavailable: the space is a tuned one whose artifact cannot be loaded here.
        DecodeBudgetExhausted: as :func:`embed_images_with`.
    """
    return embed_images_with(
        rt, function, images, space_tail(rt, function.id, function.vector_space)
    )


def embed_images_with(
    rt: Runtime, function: Function, images: Sequence[bytes], tail: TunedTail | None
) -> list[np.ndarray | InvalidImage]:
    """Decode each image safely and embed them with the function's pinned backbone, in order:
    its vectors, or (``tail`` given) that tuned tail's features of them, from one pass of the
    shared trunk (:meth:`ImageEncoder.encode_tuned`, in this process or on the Ray cluster). An
    image that cannot be decoded is its InvalidImage; the others are still embedded.

    The decoded images go to the encoder in one call, which batches them; only more than
    ``queue_limit`` images or :data:`DECODED_PIXELS_PER_CALL` pixels take several calls, or room
    in the runtime's decode budget running out. Each image reserves its pixels in that budget
    before it is decoded and gives them back once its call has encoded it.

    Raises:
        DecodeBudgetExhausted: the budget had no room for an image within its wait.
    """
    encoder = rt.encoders.get(function.backbone)
    if tail is None:
        return _embedded(rt, images, lambda decoded: list(encoder.encode(decoded)))
    tuned = tail
    return _embedded(rt, images, lambda decoded: list(encoder.encode_tuned(decoded, tuned)))


def space_tail(rt: Runtime, function_id: str, space: int | None) -> TunedHead | None:
    """The tuned tower that embeds the function's vector space ``space`` (see
    ``Function.vector_space``), from that tuned version's artifact (kept in
    :attr:`Runtime.space_tails`); None for the backbone's own space.

    Raises:
        ServiceUnavailable: the artifact cannot be loaded here.
    """
    if space is None:
        return None

    def load() -> TunedHead:
        with session_scope(rt.engine) as session:
            sha256 = session.exec(
                select(ModelVersion.artifact_sha256).where(
                    ModelVersion.function_id == function_id, ModelVersion.version == space
                )
            ).first()
        try:
            head, _meta = rt.models.load(function_id, space, sha256=sha256)
        except (ArtifactNotFound, ArtifactCorrupt) as exc:
            raise ServiceUnavailable(
                f"function {function_id}'s vectors are in the space of tuned version {space}, "
                f"whose artifact cannot be loaded here: {exc}"
            ) from exc
        if not isinstance(head, TunedHead):
            raise ServiceUnavailable(
                f"function {function_id}'s vector space names version {space}, not a tuned one"
            )
        return head

    return rt.space_tails.get(function_id, space, load)


def _embedded(
    rt: Runtime, images: Sequence[bytes], encode: Callable[[list[Image.Image]], list[Any]]
) -> list[Any]:
    """:func:`embed_images`'s decoding and budgeting, with ``encode`` giving each decoded
    image's result."""
    embedded: dict[int, Any] = {}
    budget, max_pixels = rt.decode_budget, rt.settings.max_image_pixels
    waiting: dict[int, Image.Image] = {}
    reserved = 0  # the pixels of ``waiting`` and of the image being decoded

    def encode_waiting() -> None:
        nonlocal waiting, reserved
        if waiting:
            embedded.update(zip(waiting, encode(list(waiting.values())), strict=True))
        waiting = {}  # the decoded images go before their pixels are given back
        budget.release(reserved)
        reserved = 0

    try:
        for i, data in enumerate(images):
            try:
                pixels = declared_pixels(data, max_pixels=max_pixels)
            except InvalidImage as exc:
                embedded[i] = exc
                continue
            full = len(waiting) >= rt.settings.queue_limit
            if waiting and (full or reserved + pixels > DECODED_PIXELS_PER_CALL):
                encode_waiting()
            if not budget.try_reserve(pixels):
                encode_waiting()  # never wait while holding pixels: it could be waiting for itself
                budget.reserve(pixels)
            reserved += pixels
            try:
                waiting[i] = decode_image(data, max_pixels=max_pixels)
            except InvalidImage as exc:
                budget.release(pixels)
                reserved -= pixels
                embedded[i] = exc
        encode_waiting()
    finally:
        budget.release(reserved)  # what an error left reserved
    return [embedded[i] for i in range(len(images))]


def add_sample(
    rt: Runtime,
    function_id: str,
    *,
    data: bytes,
    label_name: str | None,
    external_id: str | None,
    change: LabelChange,
    source: str = "upload",
    reuse_image: bool = False,
) -> tuple[Sample, bool]:
    """Validate, embed and store one sample; returns ``(sample, created)``. A label is recorded
    in the label history as ``change`` (who uploads and through what path).

    Retrying with the same ``external_id`` and the same image and label returns the first sample
    (``created`` False); the same ``external_id`` with different content is a 409. With
    ``reuse_image`` an image the function already holds returns that sample as it is (Nyckel's
    duplicate rule). Nothing is written before the image has been decoded and embedded, and the
    blob is written before the row that references it, so a crash leaves at most an orphan blob
    (swept at start). The vector is stored only if the function's vectors are still in the space
    it was embedded in; if they moved meanwhile (:mod:`service.spaces`), it is embedded again
    (503 when that keeps happening).
    """
    if label_name is not None:  # a bad name is refused before any work
        label_name = normalize_label_name(label_name)
    digest = rt.blobs.digest(data)
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
        if reuse_image:
            same = session.exec(
                select(Sample).where(Sample.function_id == function_id, Sample.blob == digest)
            ).first()
            if same is not None:
                return same, False
    vector = embed_image(rt, function, data)
    if external_id is not None:
        existing = _same_external_id(rt, function_id, external_id, digest, label_name)
        if existing is not None:
            return existing, False
    for attempt in range(SPACE_RETRIES):
        try:
            sample = _insert_sample(
                rt, function, digest, data, vector, label_name, external_id, change, source
            )
            break
        except SpaceMoved:  # the function's vectors moved while this one was embedded
            if attempt == SPACE_RETRIES - 1:
                raise ServiceUnavailable(
                    f"function {function_id}'s vectors kept moving to another space; try again"
                ) from None
            with session_scope(rt.engine) as session:
                function = get_function(session, function_id)
            vector = embed_image(rt, function, data)
        except IntegrityError:
            if external_id is not None:  # a concurrent request with the same externalId won
                existing = _same_external_id(rt, function_id, external_id, digest, label_name)
                if existing is not None:
                    return existing, False
            raise
    if sample.label_id is not None:
        index_labelled(rt, function_id, sample.id, vector)
    return sample, True


def _insert_sample(
    rt: Runtime,
    function: Function,
    digest: str,
    data: bytes,
    vector: np.ndarray,
    label_name: str | None,
    external_id: str | None,
    change: LabelChange,
    source: str,
) -> Sample:
    """Store the blob and the sample's row, its vector checked to be in the function's space
    (:func:`store.check_space`) in the same transaction; an error removes the blob again."""
    rt.blobs.put(data)
    try:
        with session_scope(rt.engine) as session:
            check_space(session, function.id, function.vector_space)
            sample = Sample(
                function_id=function.id,
                blob=digest,
                embedding=vector_to_bytes(vector),
                external_id=external_id,
                source=source,
            )
            if label_name is not None:
                _annotate(session, function.id, sample, label_name, change)
            session.add(sample)
    except BaseException:
        delete_unreferenced_blobs(rt, {digest})
        raise
    return sample


def _same_external_id(
    rt: Runtime, function_id: str, external_id: str, digest: str, label_name: str | None
) -> Sample | None:
    with session_scope(rt.engine) as session:
        row = session.exec(
            select(Sample, Label)
            .join(Label, col(Sample.label_id) == Label.id, isouter=True)
            .where(Sample.function_id == function_id, Sample.external_id == external_id)
        ).first()
    if row is None:
        return None
    sample, label = row
    same_label = (label.name if label else None) == label_name
    if sample.blob != digest or not same_label:
        raise Conflict(
            f"externalId {external_id!r} is already used by sample {sample.id} "
            "with a different image or label"
        )
    return sample


def _annotate(
    session: Session, function_id: str, sample: Sample, label_name: str, change: LabelChange
) -> None:
    label = annotation_label(session, function_id, label_name)
    if label_sample(session, sample, label, change):
        follow_relabel(session=session, sample=sample)


def set_annotation(
    rt: Runtime, function_id: str, sample_id: str, label_name: str, change: LabelChange
) -> Sample:
    """Give the sample the label (recorded as ``change``); the same label again changes nothing."""
    with session_scope(rt.engine) as session:
        sample = get_sample(session, function_id, sample_id)
        _annotate(session, function_id, sample, label_name, change)
        vector = vector_from_bytes(sample.embedding)
    index_labelled(rt, function_id, sample.id, vector)
    return sample


def remove_annotation(rt: Runtime, function_id: str, sample_id: str, change: LabelChange) -> Sample:
    """Make the sample unlabelled again (counts as an annotation event for retraining; recorded
    as ``change``)."""
    with session_scope(rt.engine) as session:
        sample = get_sample(session, function_id, sample_id)
        unlabel_sample(session, sample, change)
    unindex(rt, function_id, sample_id, "labelled")
    return sample


def get_sample(session: Session, function_id: str, sample_id: str) -> Sample:
    get_function(session, function_id)
    sample = session.get(Sample, sample_id)
    if sample is None or sample.function_id != function_id:
        raise NotFound(f"sample {sample_id} not found in function {function_id}")
    return sample


def delete_sample(rt: Runtime, function_id: str, sample_id: str, change: LabelChange) -> Sample:
    """Delete a sample (and its blob if nothing else names it); returns the deleted row. A
    labelled sample's history gets a last event, its label removed as ``change``, and stays."""
    with session_scope(rt.engine) as session:
        sample = get_sample(session, function_id, sample_id)
        # before any row: a move rewriting the suspects' vectors waits for this, or this for it
        lock_space(session, function_id)
        drop_open_suspects(session=session, sample_id=sample_id)
        record_deletion(session, sample, change)
        session.delete(sample)
    unindex(rt, function_id, sample_id, "labelled")
    delete_unreferenced_blobs(rt, {sample.blob})
    return sample


def list_samples(
    session: Session,
    function_id: str,
    *,
    annotated: bool | None,
    start: int,
    count: int,
    newest_first: bool = False,
) -> tuple[list[tuple[Sample, Label | None]], int]:
    """A page of the function's samples with their labels, oldest first unless ``newest_first``,
    and the total count."""
    get_function(session, function_id)
    query = select(Sample).where(Sample.function_id == function_id)
    if annotated is not None:
        query = query.where(
            col(Sample.label_id).isnot(None) if annotated else col(Sample.label_id).is_(None)
        )
    total = session.exec(select(sql.count()).select_from(query.subquery())).one()
    created, sample_id = col(Sample.created_at), col(Sample.id)
    order = (created.desc(), sample_id.desc()) if newest_first else (created.asc(), sample_id.asc())
    rows = session.exec(query.order_by(*order).offset(start).limit(count)).all()
    labels = {
        label.id: label
        for label in session.exec(select(Label).where(Label.function_id == function_id))
    }
    return [(s, labels.get(s.label_id or "")) for s in rows], total


@dataclass(frozen=True)
class SampleCounts:
    """How many samples a function has, how many are labelled, and how many per label id."""

    total: int
    annotated: int
    by_label: dict[str, int]


def sample_counts(session: Session, function_id: str) -> SampleCounts:
    get_function(session, function_id)
    rows = session.exec(
        select(Sample.label_id, sql.count())
        .where(Sample.function_id == function_id)
        .group_by(col(Sample.label_id))
    ).all()
    by_label = {label_id: n for label_id, n in rows if label_id is not None}
    return SampleCounts(
        total=sum(n for _, n in rows), annotated=sum(by_label.values()), by_label=by_label
    )


def sample_public(
    sample: Sample, label: Label | None, annotated_by: str | None = None
) -> SamplePublic:
    annotation = AnnotationPublic(label_name=label.name, label_id=label.id) if label else None
    return SamplePublic(
        id=sample.id,
        function_id=sample.function_id,
        external_id=sample.external_id,
        annotation=annotation,
        source=sample.source,
        created_at=sample.created_at,
        annotated_at=sample.annotated_at if label else None,
        annotated_by=annotated_by if label else None,
    )


def reviewers(session: Session, sample_ids: Sequence[str]) -> dict[str, str | None]:
    """Sample id -> who gave it its current label: the people of its last label event
    (comma-separated when several reviewers agreed), for sample answers and export manifests.
    A sample labelled before the label history existed has no events: for it, the reviewer of
    the last annotated review item naming it, if any."""
    if not sample_ids:
        return {}
    events = session.exec(
        select(LabelEvent.sample_id, LabelEvent.actors)
        .where(col(LabelEvent.sample_id).in_(sample_ids))
        .order_by(col(LabelEvent.at).asc(), col(LabelEvent.id).asc())
    ).all()
    by: dict[str, str | None] = {sid: ", ".join(actors) or None for sid, actors in events}
    older = [sid for sid in sample_ids if sid not in by]
    if older:
        rows = session.exec(
            select(ReviewItem.sample_id, ReviewItem.annotated_by)
            .where(col(ReviewItem.sample_id).in_(older), ReviewItem.status == "annotated")
            .order_by(col(ReviewItem.updated_at).asc())
        ).all()
        by.update((sid, who) for sid, who in rows if sid is not None)
    return by


def sample_history(session: Session, function_id: str, sample_id: str) -> list[LabelEvent]:
    """The sample's label changes, oldest first. A deleted sample keeps its history; a sample
    the function never had (no events, no row) is a 404."""
    get_function(session, function_id)
    events = session.exec(
        select(LabelEvent)
        .where(LabelEvent.function_id == function_id, LabelEvent.sample_id == sample_id)
        .order_by(col(LabelEvent.at).asc(), col(LabelEvent.id).asc())
    ).all()
    if not events:
        get_sample(session, function_id, sample_id)
    return list(events)

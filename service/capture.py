"""Invoke capture wiring: policy per function, the FAISS index kept in step with the database."""

from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
from sqlmodel import col, select

from capture import CaptureController, Kind, add_pending
from capture.novelty import NoveltyModel
from review_queue import capture_times, create_item, holds_image, lock_captures
from service.runtime import Runtime
from service.schemas import CaptureInfo
from store import (
    BlobStore,
    ReviewItem,
    Sample,
    SpaceMoved,
    check_space,
    session_scope,
    utcnow,
    vector_from_bytes,
)

log = logging.getLogger("winnow.capture")


def index_key(row_id: str) -> int:
    """The int64 FAISS id of a sample or review item: 60 bits of its random id."""
    return int(row_id.rsplit("_", 1)[1][:15], 16)


def traffic_novelty(
    rt: Runtime,
    function_id: str,
    vectors: np.ndarray,
    novelty_model: NoveltyModel | None,
    *,
    scored: bool,
    space: int | None,
) -> list[float | None]:
    """The inputs ``vectors`` (shape ``(n, dim)``, invoked together, embedded in ``space``: see
    ``Function.vector_space``) join the function's traffic window of that space and cold-start
    reservoir, each scored for novelty against the window as it was when ``scored`` (a model
    answered them) and the function has a novelty model of their dimension; else None each."""
    window = rt.novelty.traffic(function_id, vectors.shape[1], tag=space)
    if not scored or novelty_model is None or novelty_model.dim != vectors.shape[1]:
        window.add(vectors)
        return [None] * vectors.shape[0]
    return [float(score) for score in window.score(novelty_model, vectors)]


def maybe_capture(
    rt: Runtime,
    function_id: str,
    controller: CaptureController,
    *,
    data: bytes,
    vector: np.ndarray,
    proba: np.ndarray | None,
    classes: list[str],
    model_version: int | None,
    label_counts: dict[str, int],
    novelty: float | None,
    space: int | None,
) -> CaptureInfo:
    """Decide whether this input goes to review and, if so, persist it before answering.

    ``proba`` None: no model serves the function yet, and cold-start capture decides (typical
    inputs of regions of traffic no labelled or queued item covers yet). The controller and label
    counts come from the invoke's serving snapshot, ``novelty`` from :func:`traffic_novelty`
    (nothing is fitted here). The input counts as an invoke for the capture rate and the drift
    signal, scored for novelty or not. ``vector`` is in ``space``; if the function's vectors
    moved to another space meanwhile (:mod:`service.spaces`), the input is not captured.
    """
    index = rt.indexes.get_or_create(function_id, vector.shape[0])
    with rt.capture.function_locks[function_id]:
        if proba is None:
            decision = controller.decide_cold_start(vector, index)
        else:
            decision = controller.decide(
                proba,
                classes,
                vector,
                index,
                label_counts,
                calibrated_novelty=novelty,
            )
        # Every invoke counts (the capture rate's denominator), scored or not (the novel share's
        # is the scored ones). Counted before a capture is written: the dashboard never sees an
        # item whose invoke is not counted yet.
        rt.novel_traffic.record(function_id, novel=None if novelty is None else decision.is_novel)
        skipped = CaptureInfo(
            captured=False, reason=None, score=decision.score, item_id=None, novelty=novelty
        )
        if not decision.captured:
            return skipped
        try:
            with session_scope(rt.engine) as session:
                # the queue is the budget, and the record of what is queued, that every process
                # serving this function shares; this process's index only knows its own captures
                lock_captures(session=session, function_id=function_id)
                check_space(session, function_id, space)
                digest = BlobStore.digest(data)
                if holds_image(session=session, function_id=function_id, blob=digest):
                    controller.rollback(decision)
                    return skipped
                since = utcnow() - timedelta(days=1)
                committed = capture_times(session=session, function_id=function_id, since=since)
                if controller.confirm(decision, committed) is not None:
                    return skipped
                item = create_item(
                    session=session,
                    function_id=function_id,
                    blob=rt.blobs.put(data),
                    vector=vector,
                    predicted_label=decision.predicted_label,
                    confidence=None if proba is None else float(np.max(proba)),
                    model_version=model_version,
                    reason=str(decision.reason),
                    score=decision.score,
                    scores=decision.to_dict(),
                )
        except SpaceMoved:
            controller.rollback(decision)
            return skipped
        except BaseException:
            controller.rollback(decision)
            raise
        controller.commit(decision)
        add_pending(index, index_key(item.id), vector)
    rt.metrics.count_capture(str(decision.reason))
    return CaptureInfo(
        captured=True,
        reason=decision.reason,
        score=decision.score,
        item_id=item.id,
        novelty=novelty,
    )


def rebuild_index(rt: Runtime, function_id: str) -> None:
    """Fill the function's index from labelled samples and pending/discarded review items."""
    with session_scope(rt.engine) as session:
        samples = session.exec(
            select(Sample.id, Sample.embedding).where(
                Sample.function_id == function_id, col(Sample.label_id).isnot(None)
            )
        ).all()
        items = session.exec(
            select(ReviewItem.id, ReviewItem.embedding).where(
                ReviewItem.function_id == function_id,
                ReviewItem.kind == "capture",  # a suspect's vector is its sample's, indexed above
                col(ReviewItem.status).in_(("pending", "discarded")),
            )
        ).all()
    rows: list[tuple[int, np.ndarray, Kind]] = [
        (index_key(i), vector_from_bytes(e), "labelled") for i, e in samples
    ]
    rows += [(index_key(i), vector_from_bytes(e), "pending") for i, e in items]
    if rows:
        rt.indexes.rebuild(function_id, rows[0][1].shape[0], rows)


def index_labelled(rt: Runtime, function_id: str, sample_id: str, vector: np.ndarray) -> None:
    """Index a labelled sample if the function is resident (else its first use indexes it)."""
    if function_id not in rt.serving:
        return
    index = rt.indexes.get_or_create(function_id, vector.shape[0])
    index.add([index_key(sample_id)], vector.reshape(1, -1), "labelled")


def unindex(rt: Runtime, function_id: str, row_id: str, kind: str | None = None) -> None:
    index = rt.indexes.get(function_id)
    if index is not None:
        index.remove([index_key(row_id)], kind)  # type: ignore[arg-type]

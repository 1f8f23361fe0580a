"""Moving a function's stored vectors into another vector space, with the version answering in it.

A version answers from vectors of its own space (``ModelVersion.vector_space``): the backbone's
(None), or a tuned version's features (its number; see :class:`learner.finetune.TunedHead`).
Everything else a function does with vectors (capture, novelty, proposals, suspects, search,
the heads trained between tunes) reads the vectors stored for it, so these must be in the space
of the version that serves: ``Function.vector_space``. ``python -m bench.tuned_space`` chose the
tuned space for a tuned function's loop (docs/models.md).

When a version of another space is about to serve (deployed by training, rolled back or
forward), :func:`move_space` re-embeds every sample and review item from its stored image in the
new space, outside any lock, then in one transaction holding the function's space lock
exclusively (:func:`store.lock_space`): embeds the rows added meanwhile, writes every vector,
empties the traffic sample (it keeps no images), re-resolves the capture rules' example vectors,
sets the space and makes the version current. Writers check the space in their own transactions,
so none stores a vector of the old space afterwards. What a process derived from the old vectors
(capture index, novelty model and traffic window, capture controller with its coverage clusters
and cold-start reservoir) is dropped by the next snapshot build that reads the new space, in this
process and in every replica (:func:`service.serving.build_snapshot`).

A failure (an image missing from the blob store, the encoder stopping) leaves everything as it
was: nothing is written before the last transaction, which commits whole or not at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

import numpy as np
from sqlalchemy import bindparam, delete, update
from sqlmodel import Session, col, select

from capture import CapturePolicy
from embeddings import InvalidImage
from learner.finetune import TunedHead
from service.capture_rules import example_embeddings
from service.errors import Conflict
from service.functions import get_function
from service.runtime import Runtime
from service.samples import embed_images_with, space_tail
from store import (
    BlobNotFound,
    Function,
    ModelVersion,
    ReviewItem,
    Sample,
    TrafficVector,
    lock_space,
    session_scope,
    shared_lock,
    vector_from_bytes,
    vector_to_bytes,
)

log = logging.getLogger("winnow.training")

T = TypeVar("T")
BATCH = 64  # images read and embedded at a time


def move_space(
    rt: Runtime,
    function_id: str,
    space: int | None,
    tail: TunedHead | None,
    flip: Callable[[Session, Function], T],
) -> T:
    """Re-embed the function's stored vectors in ``space`` with ``tail`` (the tuned tower that
    embeds it; None for the backbone's space) and, in the same transaction, call ``flip``
    (which makes the version that answers in it current); returns what ``flip`` returns.

    The caller holds the function's deploy lock (``rt.deploy_locks``) and serves the version
    after this returns.

    Raises:
        NotFound: no such function.
        Conflict: a stored image cannot be read or decoded.
    """
    started = time.perf_counter()
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
        rows = _rows(session, function_id)
    vectors = _embed(rt, function, tail, rows)
    with session_scope(rt.engine) as session:
        lock_space(session, function_id, exclusive=True)
        function = get_function(session, function_id)  # read under the lock
        rows = _rows(session, function_id)
        vectors.update(_embed(rt, function, tail, [row for row in rows if row[1] not in vectors]))
        for table, kind in ((Sample, "sample"), (ReviewItem, "item")):
            ids = [row_id for row_kind, row_id, _blob in rows if row_kind == kind]
            if ids:
                session.connection().execute(
                    update(table).where(col(table.id) == bindparam("row_id")),
                    [{"row_id": i, "embedding": vector_to_bytes(vectors[i])} for i in ids],
                )
        session.connection().execute(
            delete(TrafficVector).where(col(TrafficVector.function_id) == function_id)
        )
        policy = CapturePolicy.from_dict(function.capture_policy or {})
        if policy.rules:  # else the stored policy stays as it was set
            function.capture_policy = _rules_in_space(session, function, policy).to_dict()
        function.vector_space = space
        session.add(function)
        result = flip(session, function)
    log.info(
        "function %s: %d vectors moved to space %s in %.1f s",
        function_id,
        len(rows),
        space,
        time.perf_counter() - started,
    )
    return result


def settle_spaces(rt: Runtime) -> int:
    """At start: move the vectors of each function whose deployed version answers in another
    space than its stored vectors are in (a tuned version deployed by a winnow from before
    vector spaces) into that version's space; returns how many moved. One that cannot move is
    logged and left serving as it was."""
    with session_scope(rt.engine) as session:
        unsettled = session.exec(
            select(Function.id, ModelVersion.vector_space)
            .join(
                ModelVersion,
                (col(ModelVersion.function_id) == col(Function.id))
                & (col(ModelVersion.version) == col(Function.deployed_version)),
            )
            .where(col(ModelVersion.vector_space).is_distinct_from(col(Function.vector_space)))
        ).all()
    moved = 0
    for function_id, space in unsettled:
        try:
            with shared_lock(rt.engine, f"train:{function_id}"), rt.deploy_locks[function_id]:
                tail = space_tail(rt, function_id, space)
                move_space(rt, function_id, space, tail, _unchanged)
            moved += 1
        except Exception:
            log.exception("function %s: its vectors could not move to space %s", function_id, space)
    return moved


def _unchanged(_session: Session, _function: Function) -> None:
    """A move's flip when the version that answers in the new space already serves."""


def _rows(session: Session, function_id: str) -> list[tuple[str, str, str]]:
    """``(kind, id, blob)`` of every sample and review item of the function."""
    samples = session.exec(
        select(Sample.id, Sample.blob).where(Sample.function_id == function_id)
    ).all()
    items = session.exec(
        select(ReviewItem.id, ReviewItem.blob).where(ReviewItem.function_id == function_id)
    ).all()
    return [("sample", i, blob) for i, blob in samples] + [("item", i, blob) for i, blob in items]


def _embed(
    rt: Runtime, function: Function, tail: TunedHead | None, rows: Sequence[tuple[str, str, str]]
) -> dict[str, np.ndarray]:
    """Each row's stored image embedded in the space ``tail`` embeds (None: the backbone's)."""
    vectors: dict[str, np.ndarray] = {}
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        try:
            images = [rt.blobs.get(blob) for _kind, _id, blob in chunk]
        except BlobNotFound as exc:
            raise Conflict(
                f"function {function.id}'s vectors cannot move to another space: a stored "
                f"image is missing ({exc})"
            ) from exc
        embedded = embed_images_with(rt, function, images, tail)
        for (_kind, row_id, _blob), vector in zip(chunk, embedded, strict=True):
            if isinstance(vector, InvalidImage):
                raise Conflict(
                    f"function {function.id}'s vectors cannot move to another space: the "
                    f"stored image of {row_id} cannot be decoded ({vector})"
                )
            vectors[row_id] = vector
    return vectors


def _rules_in_space(session: Session, function: Function, policy: CapturePolicy) -> CapturePolicy:
    """The function's capture ``policy`` with each example rule's vectors read again (the rows
    were just rewritten in this transaction). An example deleted since the rule was set is left
    out of it, and a rule none of whose examples remain is dropped (logged)."""
    rules = []
    for rule in policy.rules:
        if not rule.examples:
            rules.append(rule)  # a text rule: only backbones with a text tower have them
            continue
        found = example_embeddings(session, function.id, rule.examples)
        kept = [example for example in rule.examples if example in found]
        if not kept:
            log.warning(
                "function %s: capture rule %r dropped: none of its examples remain to embed in "
                "the new vector space",
                function.id,
                rule.name,
            )
            continue
        rules.append(
            replace(rule, examples=tuple(kept)).with_vectors(
                np.stack([vector_from_bytes(found[example]) for example in kept])
            )
        )
    return CapturePolicy.from_dict({**policy.to_dict(), "rules": rules})

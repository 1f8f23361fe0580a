"""The one reader of a function's labelled data: what training, suspects, novelty and new-class
proposals learn from."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlmodel import col, select

from service.runtime import Runtime
from store import (
    Function,
    Label,
    ReviewItem,
    Sample,
    as_utc,
    session_scope,
    vector_from_bytes,
)


@dataclass(frozen=True)
class LabelledData:
    """Every labelled sample of a function, in a stable order."""

    vectors: np.ndarray
    names: list[str]
    annotated_at: list[datetime | None]
    # True for samples labelled from the random capture slice: an unbiased holdout.
    from_random_slice: np.ndarray
    sample_ids: list[str] = field(default_factory=list)
    # The vector space the vectors are in (Function.vector_space when they were read).
    space: int | None = None


def labelled_data(rt: Runtime, function_id: str) -> LabelledData:
    """Every labelled sample of the function (vectors, label names, when and how labelled).

    The space is read first: if the vectors move to another space meanwhile, what was trained
    on them is recorded in the old space and not deployed (:func:`service.deploys.record_version`).
    """
    with session_scope(rt.engine) as session:
        space = session.exec(
            select(Function.vector_space).where(Function.id == function_id)
        ).first()
        rows = session.exec(
            select(Sample, Label.name, ReviewItem.reason)
            .join(Label, col(Sample.label_id) == Label.id)
            .join(ReviewItem, col(Sample.review_item_id) == ReviewItem.id, isouter=True)
            .where(Sample.function_id == function_id)
            .order_by(col(Sample.created_at), col(Sample.id))
        ).all()
    vectors = (
        np.stack([vector_from_bytes(r[0].embedding) for r in rows])
        if rows
        else np.zeros((0, 0), dtype=np.float32)
    )
    return LabelledData(
        vectors=vectors,
        names=[r[1] for r in rows],
        annotated_at=[as_utc(r[0].annotated_at) for r in rows],
        from_random_slice=np.array([r[2] == "random" for r in rows], dtype=bool),
        sample_ids=[r[0].id for r in rows],
        space=space,
    )

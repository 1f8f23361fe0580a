"""A bounded sample of each function's recent invoke traffic, in the database every replica shares.

The semi-supervised candidate (:mod:`learner.semi_supervised`) learns from the inputs a function
is invoked with, so the sample must outlive a process and be the same for every replica: a ring
of ``size`` slots per function (:class:`TrafficVector`, primary key ``(function_id, slot)``)
addressed by the function's count of vectors ever written (``Function.traffic_written``). A write
advances the count atomically (``UPDATE ... RETURNING``: on PostgreSQL the function's row lock
serialises writers of one function until they commit) and overwrites the slots the count moved
over, so writers in any number of processes share one ring and it never holds more than ``size``
rows. A batch is written only while the function's vectors are still in the space it was embedded
in (``Function.vector_space``, checked by the same statement). The rows go with their function
(``ON DELETE CASCADE``).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from sqlalchemy import Column, LargeBinary, delete, insert, or_, select, update
from sqlmodel import Field, Session, SQLModel, col

from store.tables import Function, utcnow, vector_from_bytes, vector_to_bytes


class TrafficVector(SQLModel, table=True):
    """One slot of a function's traffic ring: an invoke input's embedding and when it was seen."""

    function_id: str = Field(foreign_key="function.id", primary_key=True, ondelete="CASCADE")
    slot: int = Field(primary_key=True)
    embedding: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    seen_at: datetime = Field(default_factory=utcnow)


def write_traffic(
    session: Session,
    *,
    function_id: str,
    vectors: np.ndarray,
    size: int,
    space: int | None,
    seen_at: datetime | None = None,
) -> int:
    """Write ``vectors`` into the function's ring of ``size`` slots, over its oldest rows.

    Call it in a transaction of its own (the function's row stays locked until it commits).
    Rows in slots ``>= size`` (a larger ring configured before) are removed too. Nothing is
    written unless the function's vectors are in ``space`` still: when its space changes, the
    ring is emptied, and vectors of the old space must not come back into it.

    Args:
        session: the transaction to write in.
        function_id: whose ring.
        vectors: ``(n, dim)`` embeddings, ``n <= size`` (only the last ``size`` are written).
        size: slots in the ring.
        space: the space ``vectors`` were embedded in (see ``Function.vector_space``).
        seen_at: when they were seen (default: now).

    Returns:
        Vectors written: 0 when the function no longer exists or its vectors moved to another
        space.
    """
    if size < 1:
        raise ValueError(f"a traffic ring needs at least one slot, not {size}")
    rows = np.asarray(vectors, dtype=np.float32)[-size:]
    if len(rows) == 0:
        return 0
    connection = session.connection()
    written = connection.execute(
        update(Function)
        .where(
            col(Function.id) == function_id,
            col(Function.vector_space).is_not_distinct_from(space),
        )
        .values(traffic_written=col(Function.traffic_written) + len(rows))
        .returning(col(Function.traffic_written))
    ).scalar_one_or_none()
    if written is None:  # deleted meanwhile, or moved to another space
        return 0
    slots = [(written - len(rows) + i) % size for i in range(len(rows))]
    connection.execute(
        delete(TrafficVector).where(
            col(TrafficVector.function_id) == function_id,
            or_(col(TrafficVector.slot).in_(slots), col(TrafficVector.slot) >= size),
        )
    )
    at = seen_at or utcnow()
    connection.execute(
        insert(TrafficVector),
        [
            {
                "function_id": function_id,
                "slot": slot,
                "embedding": vector_to_bytes(row),
                "seen_at": at,
            }
            for slot, row in zip(slots, rows, strict=True)
        ],
    )
    return len(rows)


def read_traffic(session: Session, *, function_id: str) -> np.ndarray | None:
    """The function's traffic sample as ``(m, dim)`` float32 rows (slot order); None if empty.

    Rows of another width than the most common one (none unless a backbone changed) are left out.
    """
    embeddings = (
        session.connection()
        .execute(
            select(col(TrafficVector.embedding))
            .where(col(TrafficVector.function_id) == function_id)
            .order_by(col(TrafficVector.slot))
        )
        .scalars()
    )
    vectors = [vector_from_bytes(data) for data in embeddings]
    if not vectors:
        return None
    widths = [len(v) for v in vectors]
    width = max(set(widths), key=widths.count)
    return np.stack([v for v in vectors if len(v) == width])

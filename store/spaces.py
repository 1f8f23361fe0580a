"""The vector space of a function's stored vectors, and the lock that keeps writers in it.

Every vector stored for a function (its samples', its review items', its traffic sample's) is in
the function's ``vector_space`` (:class:`store.tables.Function`). A move to another space
(:mod:`service.spaces`) rewrites them all and changes the column in one transaction that holds
:func:`lock_space` exclusively. A writer that stores a vector, or copies one from another row,
takes it shared first in its own transaction: it then either commits before the move's
transaction starts (and the move sees its row) or reads the moved rows and the new space.

On PostgreSQL the shared lock is ``FOR KEY SHARE`` on the function's row (the lock a foreign key
to it takes anyway) and the exclusive one ``FOR UPDATE``. SQLite has one writer at a time, and its
transaction starts at the first write: both begin with a write to the function's row that changes
nothing, so that what follows is read inside the writer's transaction.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlmodel import Session, col

from store.tables import Function


class SpaceMoved(Exception):
    """The function's vectors moved to another space after the caller embedded its own."""


def lock_space(session: Session, function_id: str, *, exclusive: bool = False) -> int | None:
    """The function's vector space, locked (shared, or ``exclusive``) until the transaction ends.

    Raises:
        LookupError: no such function.
    """
    connection = session.connection()
    query = select(col(Function.vector_space)).where(col(Function.id) == function_id)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(read=not exclusive, key_share=not exclusive)
    else:
        connection.execute(
            update(Function)
            .where(col(Function.id) == function_id)
            .values(vector_space=col(Function.vector_space))
        )
    row = connection.execute(query).first()
    if row is None:
        raise LookupError(f"function {function_id} not found")
    space: int | None = row[0]
    return space


def check_space(session: Session, function_id: str, space: int | None) -> None:
    """Lock the function's space shared (:func:`lock_space`) and make sure it is ``space``.

    Raises:
        SpaceMoved: the function's vectors are in another space now.
    """
    current = lock_space(session, function_id)
    if current != space:
        raise SpaceMoved(
            f"function {function_id}'s vectors moved to space {current} (this was embedded in "
            f"space {space})"
        )

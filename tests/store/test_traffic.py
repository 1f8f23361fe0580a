"""The traffic sample's ring: bounded at ``size`` however many write, shared by writers in several
processes, gone with its function, closed to vectors of a space its function left, and added to a
database of the previous revision."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlmodel import col, delete, func, select

from store import (
    Function,
    TrafficVector,
    make_engine,
    read_traffic,
    session_scope,
    write_traffic,
)
from store.migrate import _config, current_revision, head_revision

pytestmark = pytest.mark.databases

DIM = 8


def new_function(engine: Engine) -> str:
    with session_scope(engine) as session:
        function = Function(name="traffic", backbone="tiny-clip")
        session.add(function)
    return function.id


def rows(start: int, count: int) -> np.ndarray:
    """``count`` vectors whose first coordinate numbers them ``start``, ``start + 1``, ..."""
    vectors = np.zeros((count, DIM), dtype=np.float32)
    vectors[:, 0] = np.arange(start, start + count)
    return vectors


def write(
    engine: Engine, function_id: str, vectors: np.ndarray, size: int, space: int | None = None
) -> int:
    with session_scope(engine) as session:
        return write_traffic(
            session, function_id=function_id, vectors=vectors, size=size, space=space
        )


def stored(engine: Engine, function_id: str) -> tuple[list[int], int]:
    """The numbers of the stored vectors (sorted), and the function's write count."""
    with session_scope(engine) as session:
        traffic = read_traffic(session, function_id=function_id)
        written = session.exec(select(Function.traffic_written).where(Function.id == function_id))
        count = written.one()
    return sorted(int(v) for v in (traffic[:, 0] if traffic is not None else [])), count


def test_the_ring_keeps_the_last_size_vectors(engine: Engine) -> None:
    fid = new_function(engine)
    assert stored(engine, fid) == ([], 0)
    with session_scope(engine) as session:
        assert read_traffic(session, function_id=fid) is None

    assert write(engine, fid, rows(0, 3), size=5) == 3
    assert stored(engine, fid) == ([0, 1, 2], 3)
    assert write(engine, fid, rows(3, 4), size=5) == 4  # wraps: 5 and 6 take slots 0 and 1
    assert stored(engine, fid) == ([2, 3, 4, 5, 6], 7)
    assert write(engine, fid, rows(7, 9), size=5) == 5  # more than the ring: the last 5
    assert stored(engine, fid) == ([11, 12, 13, 14, 15], 12)
    with session_scope(engine) as session:
        traffic = read_traffic(session, function_id=fid)
    assert traffic is not None and traffic.shape == (5, DIM) and traffic.dtype == np.float32

    # a smaller ring configured later: the slots beyond it go at the next write
    assert write(engine, fid, rows(16, 1), size=3) == 1
    numbers, _ = stored(engine, fid)
    assert len(numbers) <= 3 and 16 in numbers


def test_writers_in_two_processes_share_one_bounded_ring(engine: Engine, url: str) -> None:
    """Two engines (two replicas' pools) write batches at once: no slot is lost or doubled, the
    ring holds ``size`` rows, and the count says how many were written in all."""
    fid = new_function(engine)
    other = make_engine(url)
    size, batches, batch = 50, 20, 7
    errors: list[BaseException] = []

    def writer(db: Engine, first: int) -> None:
        try:
            for b in range(batches):
                write(db, fid, rows(first + b * batch, batch), size=size)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [
        threading.Thread(target=writer, args=(engine, 0)),
        threading.Thread(target=writer, args=(other, 10_000)),
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        other.dispose()
    assert not errors
    numbers, written = stored(engine, fid)
    assert written == 2 * batches * batch
    assert len(numbers) == size == len(set(numbers))
    with session_scope(engine) as session:
        slots = session.exec(select(TrafficVector.slot).where(TrafficVector.function_id == fid))
        assert sorted(slots.all()) == list(range(size))
    # what remains is the last writes: no vector of the first batches of either writer
    assert all(n % 10_000 >= batch for n in numbers)


def test_the_rows_go_with_their_function(engine: Engine) -> None:
    kept, deleted = new_function(engine), new_function(engine)
    write(engine, kept, rows(0, 4), size=10)
    write(engine, deleted, rows(0, 4), size=10)
    with session_scope(engine) as session:
        session.exec(delete(Function).where(col(Function.id) == deleted))
    assert write(engine, deleted, rows(4, 2), size=10) == 0  # a late flush writes nothing
    with session_scope(engine) as session:
        counts = dict(
            session.exec(
                select(TrafficVector.function_id, func.count()).group_by(
                    col(TrafficVector.function_id)
                )
            ).all()
        )
    assert counts == {kept: 4}


def test_only_vectors_of_the_functions_space_are_written(engine: Engine) -> None:
    """A batch embedded before the function's vectors moved to another space is refused whole."""
    fid = new_function(engine)
    assert write(engine, fid, rows(0, 2), size=10, space=7) == 0  # the backbone's space still
    assert stored(engine, fid) == ([], 0)
    with session_scope(engine) as session:
        function = session.get(Function, fid)
        assert function is not None
        function.vector_space = 7
    assert write(engine, fid, rows(0, 2), size=10) == 0  # the backbone's: a space it left
    assert stored(engine, fid) == ([], 0)
    assert write(engine, fid, rows(2, 3), size=10, space=7) == 3
    assert stored(engine, fid) == ([2, 3, 4], 3)
    assert write(engine, fid, rows(5, 1), size=10, space=8) == 0
    assert stored(engine, fid) == ([2, 3, 4], 3)


def test_a_database_at_the_previous_revision_is_upgraded(url: str) -> None:
    """Revision 0003 adds the ring to a database of revision 0002 that has functions: their
    rings start empty at slot 0."""
    raw = create_engine(url)
    try:
        with raw.begin() as connection:
            command.upgrade(_config(connection), "0002")
            connection.execute(
                text(
                    "INSERT INTO function (id, name, backbone, created_at, pinned, "
                    "annotation_counter, capture_policy) VALUES ('function_old', 'old', "
                    "'tiny-clip', '2026-12-01 00:00:00', false, 0, '{}')"
                )
            )
    finally:
        raw.dispose()

    engine = make_engine(url)
    try:
        assert current_revision(engine) == head_revision()
        assert stored(engine, "function_old") == ([], 0)
        assert write(engine, "function_old", rows(0, 2), size=4) == 2
        assert stored(engine, "function_old") == ([0, 1], 2)
    finally:
        engine.dispose()

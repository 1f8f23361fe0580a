"""The vector-space lock: a writer checks the space it embedded in, and a move holding the lock
exclusively makes writers wait, then see the new space (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.engine import Engine

from store import Function, SpaceMoved, check_space, lock_space, session_scope
from tests.store.test_traffic import new_function

pytestmark = pytest.mark.databases


def test_a_writer_checks_the_space_it_embedded_in(engine: Engine) -> None:
    fn = new_function(engine)
    with session_scope(engine) as session:
        check_space(session, fn, None)
    with session_scope(engine) as session:
        assert lock_space(session, fn, exclusive=True) is None
        session.get(Function, fn).vector_space = 4  # type: ignore[union-attr]

    with pytest.raises(SpaceMoved, match="space 4"), session_scope(engine) as session:
        check_space(session, fn, None)
    with session_scope(engine) as session:
        check_space(session, fn, 4)
    with pytest.raises(LookupError), session_scope(engine) as session:
        lock_space(session, "function_missing")


def test_a_writer_waits_for_a_move_and_then_sees_its_space(engine: Engine) -> None:
    fn = new_function(engine)
    moving, seen = threading.Event(), []

    def writer() -> None:
        moving.wait()
        with session_scope(engine) as session:
            seen.append(lock_space(session, fn))

    thread = threading.Thread(target=writer)
    thread.start()
    with session_scope(engine) as session:
        lock_space(session, fn, exclusive=True)
        moving.set()
        time.sleep(0.3)  # the writer is blocked meanwhile
        assert seen == []
        session.get(Function, fn).vector_space = 9  # type: ignore[union-attr]
    thread.join(timeout=10)

    assert seen == [9]

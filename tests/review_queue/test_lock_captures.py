"""lock_captures: processes sharing PostgreSQL read the capture times and add one at a time."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import numpy as np
import pytest

from review_queue import capture_times, create_item, lock_captures
from store import Function, make_engine, session_scope, utcnow
from tests.databases import fresh_postgres_database

pytestmark = pytest.mark.postgres  # SQLite ignores row locks: replicas need PostgreSQL

BUDGET = 3


def test_concurrent_captures_from_two_engines_never_exceed_a_shared_budget() -> None:
    """Each writer reads the captures, waits, then adds one if the budget allows. Without the
    lock all six read an empty queue and all add; with it exactly the budget is added."""
    with fresh_postgres_database() as url:
        engines = [make_engine(url), make_engine(url)]  # two replicas' connection pools
        with session_scope(engines[0]) as session:
            function = Function(name="shared", backbone="tiny-clip")
            session.add(function)
        start = threading.Barrier(6)
        errors: list[BaseException] = []

        def writer(engine_index: int) -> None:
            try:
                start.wait(timeout=10)
                with session_scope(engines[engine_index]) as session:
                    lock_captures(session=session, function_id=function.id)
                    since = utcnow() - timedelta(days=1)
                    taken = capture_times(session=session, function_id=function.id, since=since)
                    time.sleep(0.05)  # a slow blob write: room for the others to interleave
                    if len(taken) < BUDGET:
                        create_item(
                            session=session,
                            function_id=function.id,
                            blob="0" * 64,
                            vector=np.zeros(4, dtype=np.float32),
                            predicted_label=None,
                            confidence=None,
                            model_version=None,
                            reason="random",
                            score=0.5,
                            scores={},
                        )
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=writer, args=(i % 2,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors
        with session_scope(engines[1]) as session:
            since = utcnow() - timedelta(days=1)
            assert (
                len(capture_times(session=session, function_id=function.id, since=since)) == BUDGET
            )
        for engine in engines:
            engine.dispose()

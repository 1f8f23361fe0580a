"""The engine: SQLite durability pragmas, and the same behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select

from store import (
    Function,
    Label,
    Sample,
    get_or_create_label,
    make_engine,
    session_scope,
    shared_lock,
    vector_from_bytes,
    vector_to_bytes,
)
from tests.databases import fresh_postgres_database

pytestmark = pytest.mark.databases


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive UTC, PostgreSQL (timestamptz) an aware datetime."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def test_sqlite_connections_are_wal_with_synchronous_full(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'winnow.db'}")
    try:
        # Two connections at once: the pragmas are set on every new connection, not just one.
        with engine.connect() as first, engine.connect() as second:
            for connection in (first, second):
                pragmas = {
                    name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                    for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
                }
                # synchronous 2 = FULL: the WAL is fsynced on every commit.
                assert pragmas == {
                    "journal_mode": "wal",
                    "synchronous": 2,
                    "foreign_keys": 1,
                    "busy_timeout": 30000,
                }
            first.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
            first.commit()
            assert (tmp_path / "winnow.db-wal").exists()
    finally:
        engine.dispose()


def test_round_trip_of_every_column_kind(engine: Engine) -> None:
    vector = np.linspace(-1, 1, 16, dtype=np.float32)
    created = datetime(2024, 5, 17, 12, 30, 15, 123456, tzinfo=UTC)
    with session_scope(engine) as session:
        function = Function(name="f", backbone="tiny-clip", capture_policy={"budget": 5, "x": [1]})
        session.add(function)
        session.flush()
        label = Label(function_id=function.id, name="cat")
        session.add(label)
        session.flush()
        sample = Sample(
            function_id=function.id,
            blob="a" * 64,
            embedding=vector_to_bytes(vector),
            label_id=label.id,
            created_at=created,
        )
        session.add(sample)
    with session_scope(engine) as session:
        stored = session.get(Sample, sample.id)
        assert stored is not None
        np.testing.assert_array_equal(vector_from_bytes(stored.embedding), vector)
        assert as_utc(stored.created_at) == created
        assert session.get(Function, function.id).capture_policy == {"budget": 5, "x": [1]}  # type: ignore[union-attr]


def test_json_columns_store_non_finite_floats_as_null(engine: Engine) -> None:
    """PostgreSQL's json type rejects NaN; a metric over an empty holdout is NaN."""
    nan, inf = float("nan"), float("inf")
    with session_scope(engine) as session:
        function = Function(
            name="f",
            backbone="tiny-clip",
            capture_policy={"a": nan, "b": [1.5, inf], "c": {"d": nan}},
        )
        session.add(function)
    with session_scope(engine) as session:
        stored = session.get(Function, function.id)
        assert stored is not None
        assert stored.capture_policy == {"a": None, "b": [1.5, None], "c": {"d": None}}


def test_unique_constraints_and_rollback(engine: Engine) -> None:
    with session_scope(engine) as session:
        function = Function(name="f", backbone="tiny-clip")
        session.add(function)
        session.flush()
        session.add(Label(function_id=function.id, name="cat"))
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(Label(function_id=function.id, name="dog"))
        session.flush()
        session.add(Label(function_id=function.id, name="cat"))
    with session_scope(engine) as session:  # the whole failed transaction was rolled back
        names = session.exec(select(Label.name).where(Label.function_id == function.id)).all()
        assert names == ["cat"]


def test_foreign_keys_are_enforced_and_cascade(engine: Engine) -> None:
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(Label(function_id="function_missing", name="cat"))
    with session_scope(engine) as session:
        function = Function(name="f", backbone="tiny-clip")
        session.add(function)
        session.flush()
        session.add(Label(function_id=function.id, name="cat"))
    with session_scope(engine) as session:
        session.exec(delete(Function).where(col(Function.id) == function.id))
    with session_scope(engine) as session:
        assert session.exec(select(Label)).all() == []


def test_concurrent_get_or_create_label_makes_one_label(engine: Engine) -> None:
    with session_scope(engine) as session:
        function = Function(name="f", backbone="tiny-clip")
        session.add(function)
    barrier = threading.Barrier(6)
    ids: list[str] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            barrier.wait()
            with session_scope(engine) as session:
                ids.append(get_or_create_label(session, function.id, " cat ").id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with session_scope(engine) as session:
        labels = session.exec(select(Label)).all()
    assert [label.name for label in labels] == ["cat"] and set(ids) == {labels[0].id}


def test_make_engine_again_on_existing_schema_keeps_data(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(Function(name="kept", backbone="tiny-clip"))
    again = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        with session_scope(again) as session:
            assert [f.name for f in session.exec(select(Function)).all()] == ["kept"]
    finally:
        again.dispose()


@pytest.mark.postgres
def test_timestamps_survive_a_non_utc_session_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PostgreSQL session in another zone (server default or PGTZ) does not shift times."""
    monkeypatch.setenv("PGTZ", "Asia/Tokyo")
    moment = datetime.now(UTC) - timedelta(days=3)
    with fresh_postgres_database() as url:
        tokyo = make_engine(url)
        try:
            with session_scope(tokyo) as session:
                function = Function(name="tz", backbone="tiny-clip", created_at=moment)
                session.add(function)
            with session_scope(tokyo) as session:
                stored = session.get(Function, function.id)
                assert stored is not None and as_utc(stored.created_at) == moment
        finally:
            tokyo.dispose()


def test_a_shared_lock_excludes_other_processes_on_postgresql(
    engine: Engine, database_url: str
) -> None:
    if not database_url:
        with shared_lock(engine, "train:f") as held, shared_lock(engine, "train:f") as again:
            assert held and again  # SQLite: one process owns the database, nothing to exclude
        return
    other = make_engine(database_url)  # a second process's pool
    try:
        with shared_lock(engine, "train:f") as held:
            assert held
            with shared_lock(other, "train:f", wait=False) as taken:
                assert not taken
            with shared_lock(other, "train:g", wait=False) as unrelated:
                assert unrelated
        with shared_lock(other, "train:f", wait=False) as taken:
            assert taken  # released with the block
    finally:
        other.dispose()

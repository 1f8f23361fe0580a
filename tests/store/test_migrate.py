"""Schema revisions: a new database is created at head, the revisions build exactly the models, a
database a newer winnow upgraded is refused, and replicas starting together upgrade once."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Float, Integer, MetaData, Table, create_engine, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, func, select

from store import Function, make_engine, session_scope, shared_lock
from store.migrate import SchemaTooNewError, current_revision, head_revision
from tests.api.live import wait_until
from tests.databases import fresh_postgres_database

pytestmark = pytest.mark.databases


def created_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("created the database schema")]


def test_a_new_database_is_created_at_head(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'winnow.db'}"
    with caplog.at_level(logging.INFO, logger="store.migrate"):
        engine = make_engine(url)
        engine.dispose()
        engine = make_engine(url)  # a second start: already at head, nothing to do
    try:
        assert current_revision(engine) == head_revision()
        tables = set(inspect(engine).get_table_names())
        assert tables == set(SQLModel.metadata.tables) | {"alembic_version"}
        assert len(created_records(caplog)) == 1
    finally:
        engine.dispose()


def test_the_revisions_build_exactly_the_models(tmp_path: Path, database_url: str) -> None:
    """Fails when a table or column is added to the models without a revision: write one with
    ``make migration MESSAGE="..."``."""
    engine = make_engine(database_url or f"sqlite:///{tmp_path / 'winnow.db'}")
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []

            # The same check on models changed without a revision reports each change.
            changed = MetaData()
            for table in SQLModel.metadata.sorted_tables:
                table.to_metadata(changed)
            changed.tables["sample"].append_column(Column("unmigrated_column", Float))
            Table("unmigrated_table", changed, Column("id", Integer, primary_key=True))
            differences = compare_metadata(context, changed)
        assert sorted(
            (d[0], d[1].name if d[0] == "add_table" else d[3].name) for d in differences
        ) == [
            ("add_column", "unmigrated_column"),
            ("add_table", "unmigrated_table"),
        ]
    finally:
        engine.dispose()


def test_a_database_a_newer_winnow_upgraded_is_refused_untouched(
    tmp_path: Path, database_url: str
) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'winnow.db'}"
    engine = make_engine(url)
    with session_scope(engine) as session:
        session.add(Function(name="kept", backbone="tiny-clip"))
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_label_claims'"))
    engine.dispose()

    with pytest.raises(SchemaTooNewError, match=r"'0099_label_claims'.*a newer winnow"):
        make_engine(url)

    raw = create_engine(url)
    try:
        with raw.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).one()
            names = connection.execute(text("SELECT name FROM function")).all()
        assert (version, names) == (("0099_label_claims",), [("kept",)])
    finally:
        raw.dispose()


@pytest.mark.postgres
def test_replicas_starting_together_upgrade_once(caplog: pytest.LogCaptureFixture) -> None:
    """While one process holds the schema lock, the others wait for it, then find head."""
    with fresh_postgres_database() as url:
        holder = create_engine(url)
        engines: list[Engine] = []
        errors: list[BaseException] = []

        def start() -> None:
            try:
                engines.append(make_engine(url))
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        def waiting_for_the_lock() -> int:
            with holder.connect() as connection:
                return int(
                    connection.execute(
                        text(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT "
                            "granted AND database = (SELECT oid FROM pg_database WHERE datname = "
                            "current_database())"
                        )
                    ).scalar_one()
                )

        threads = [threading.Thread(target=start) for _ in range(2)]
        try:
            with caplog.at_level(logging.INFO, logger="store.migrate"):
                with shared_lock(holder, "schema"):
                    for thread in threads:
                        thread.start()
                    wait_until(lambda: waiting_for_the_lock() == 2, what="two starts waiting")
                    assert not inspect(holder).has_table("function")  # nothing ran meanwhile
                for thread in threads:
                    thread.join(timeout=60)
            assert not errors and len(engines) == 2
            assert len(created_records(caplog)) == 1  # one created the schema, one found it
            for engine in engines:
                with session_scope(engine) as session:
                    session.add(Function(name="replica", backbone="tiny-clip"))
            with session_scope(engines[0]) as session:
                assert session.exec(select(func.count()).select_from(Function)).one() == 2
        finally:
            for engine in [*engines, holder]:
                engine.dispose()

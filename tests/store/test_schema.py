"""A database made by a winnow from before migrations is upgraded at start, its rows kept.

The pre-migration databases are built from the DDL main's winnow ran (``pre_migration/*.sql``,
frozen), never from today's models, so these tests keep meaning the same when the models change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, inspect, text
from sqlalchemy.engine import Connection
from sqlmodel import select

from store import (
    ApiKey,
    Function,
    Label,
    ModelVersion,
    NovelMark,
    ReviewItem,
    Sample,
    make_engine,
    session_scope,
)
from store.migrate import current_revision, head_revision
from store.schema import SchemaUpgradeError, _add_column_sql

pytestmark = pytest.mark.databases

PRE_MIGRATION = Path(__file__).parent / "pre_migration"


def pre_migration_database(url: str, *, drop: tuple[str, ...] = ()) -> None:
    """Create the tables main's winnow created, with one row in each; ``drop``: SQL run after
    the DDL (to make an older database), before the rows (which then skip what was dropped)."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            ddl = (PRE_MIGRATION / f"{engine.dialect.name}.sql").read_text()
            for statement in ddl.split(";"):
                if statement.strip():
                    connection.exec_driver_sql(statement)
            for statement in drop:
                connection.exec_driver_sql(statement)
            _insert_rows(connection)
    finally:
        engine.dispose()


def _insert_rows(connection: Connection) -> None:
    """One row per table, written as main's winnow wrote them (columns it knew only)."""
    columns = {
        table: {c["name"] for c in inspect(connection).get_columns(table)}
        for table in inspect(connection).get_table_names()
    }
    now = "2024-05-01 12:00:00+00:00"
    rows = {
        "function": {"id": "function_old", "name": "old", "backbone": "tiny-clip",
                     "created_at": now, "pinned": False, "annotation_counter": 3,
                     "capture_policy": "{}"},
        "apikey": {"id": "key_old", "function_id": "function_old", "scopes": '["invoke"]',
                   "secret_hash": "ab" * 32, "created_at": now},
        "label": {"id": "label_old", "function_id": "function_old", "name": "cat",
                  "created_at": now},
        "sample": {"id": "sample_old", "function_id": "function_old", "blob": "b1",
                   "embedding": b"\x00" * 8, "label_id": "label_old", "source": "upload",
                   "created_at": now, "confirmed_label_id": "label_old"},
        "modelversion": {"function_id": "function_old", "version": 1, "status": "deployed",
                         "backbone": "tiny-clip", "head": "logistic", "params": "{}",
                         "metrics": "{}", "labels": '["cat"]', "sample_count": 1,
                         "annotation_counter": 3, "train_seconds": 0.5, "decision": "{}",
                         "trigger": "manual", "created_at": now, "artifact_sha256": "cd" * 32},
        "reviewitem": {"id": "item_old", "function_id": "function_old", "kind": "suspect",
                       "blob": "b2", "embedding": b"\x00" * 8, "status": "pending",
                       "reason": "uncertain", "score": 0.5, "scores": "{}",
                       "created_at": now, "updated_at": now},
        "novelmark": {"item_id": "item_old", "function_id": "function_old",
                      "marked_novel": True, "dismissed": False, "updated_at": now},
    }  # fmt: skip
    for table, row in rows.items():
        if table not in columns:
            continue
        kept = {name: value for name, value in row.items() if name in columns[table]}
        names = ", ".join(kept)
        values = ", ".join(f":{name}" for name in kept)
        connection.execute(text(f"INSERT INTO {table} ({names}) VALUES ({values})"), kept)


def sqlite_or(database_url: str, tmp_path: Path) -> str:
    return database_url or f"sqlite:///{tmp_path / 'winnow.db'}"


def test_a_database_made_by_main_is_stamped_and_upgraded_with_its_rows(
    tmp_path: Path, database_url: str
) -> None:
    url = sqlite_or(database_url, tmp_path)
    pre_migration_database(url)

    engine = make_engine(url)  # what starting the new version does
    try:
        assert current_revision(engine) == head_revision()
        with session_scope(engine) as session:
            function = session.exec(select(Function)).one()
            assert (function.id, function.annotation_counter) == ("function_old", 3)
            assert session.exec(select(ApiKey)).one().scopes == ["invoke"]
            assert session.exec(select(Label)).one().name == "cat"
            assert session.exec(select(Sample)).one().confirmed_label_id == "label_old"
            assert session.exec(select(ModelVersion)).one().artifact_sha256 == "cd" * 32
            assert session.exec(select(ReviewItem)).one().kind == "suspect"
            assert session.exec(select(NovelMark)).one().marked_novel is True
    finally:
        engine.dispose()
    make_engine(url).dispose()  # a second start finds the database at head


def test_an_older_database_gains_the_new_columns_with_defaults(
    tmp_path: Path, database_url: str
) -> None:
    url = sqlite_or(database_url, tmp_path)
    # What a database from before suspects, proposals and artifact digests looked like: no kind
    # column on review items, no confirmed label on samples, no novel-mark table, no artifact
    # digest on model versions.
    pre_migration_database(
        url,
        drop=(
            "DROP INDEX ix_reviewitem_kind",
            "ALTER TABLE reviewitem DROP COLUMN kind",
            "ALTER TABLE sample DROP COLUMN confirmed_label_id",
            "ALTER TABLE modelversion DROP COLUMN artifact_sha256",
            "DROP TABLE novelmark",
        ),
    )

    upgraded = make_engine(url)
    try:
        assert current_revision(upgraded) == head_revision()
        inspector = inspect(upgraded)
        assert "novelmark" in inspector.get_table_names()
        assert "ix_reviewitem_kind" in {i["name"] for i in inspector.get_indexes("reviewitem")}
        with upgraded.connect() as connection:
            kind = connection.execute(text("SELECT kind FROM reviewitem")).scalar_one()
            digest = connection.execute(text("SELECT artifact_sha256 FROM modelversion")).one()
            confirmed = connection.execute(text("SELECT confirmed_label_id FROM sample")).one()
        assert kind == "capture"  # the old row got the column's default
        assert digest == (None,)  # an older artifact's digest is unknown: it is not loaded
        assert confirmed == (None,)
    finally:
        upgraded.dispose()


def test_a_pre_migration_database_that_cannot_be_brought_up_is_refused_unchanged(
    tmp_path: Path, database_url: str
) -> None:
    url = sqlite_or(database_url, tmp_path)
    # reason is required and has no default: no value can be made up for the existing rows.
    pre_migration_database(url, drop=("ALTER TABLE reviewitem DROP COLUMN reason",))
    with pytest.raises(SchemaUpgradeError, match="reviewitem.reason"):
        make_engine(url)
    engine = create_engine(url)
    try:
        assert "alembic_version" not in inspect(engine).get_table_names()  # not stamped
        with engine.connect() as connection:
            assert connection.execute(text("SELECT id FROM reviewitem")).scalar_one() == "item_old"
    finally:
        engine.dispose()


def test_a_required_column_without_a_default_is_refused_clearly(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'winnow.db'}")
    table = Table("t", MetaData(), Column("n", Integer, nullable=False), Column("s", String))
    try:
        with engine.connect() as connection:
            with pytest.raises(SchemaUpgradeError, match="t.n"):
                _add_column_sql(connection, "t", table.c.n)
            assert _add_column_sql(connection, "t", table.c.s).endswith("ADD COLUMN s VARCHAR")
    finally:
        engine.dispose()

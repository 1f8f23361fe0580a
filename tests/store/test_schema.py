"""A database an earlier winnow made gets the tables and columns this version added."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, inspect, text

from store import make_engine
from store.schema import SchemaUpgradeError, _add_column_sql

pytestmark = pytest.mark.databases


def test_an_older_database_gains_the_new_columns_with_defaults(
    tmp_path: Path, database_url: str
) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'winnow.db'}"
    engine = make_engine(url)
    with engine.begin() as connection:
        # What a database from before suspects, proposals and artifact digests looked like: no
        # kind column on review items, no confirmed label on samples, no novel-mark table, no
        # artifact digest on model versions.
        connection.execute(text("DROP INDEX ix_reviewitem_kind"))
        for table, column in (
            ("reviewitem", "kind"),
            ("sample", "confirmed_label_id"),
            ("modelversion", "artifact_sha256"),
        ):
            connection.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        connection.execute(text("DROP TABLE novelmark"))
        connection.execute(
            text(
                "INSERT INTO function (id, name, backbone, created_at, pinned, "
                "annotation_counter, capture_policy) VALUES "
                "('function_old', 'old', 'tiny', CURRENT_TIMESTAMP, false, 0, '{}')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO reviewitem (id, function_id, blob, embedding, status, reason, "
                "score, scores, created_at, updated_at) VALUES ('item_old', 'function_old', "
                "'b', :vector, 'pending', 'uncertain', 0.5, '{}', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            ),
            {"vector": b"\x00" * 8},
        )
        connection.execute(
            text(
                "INSERT INTO modelversion (function_id, version, status, backbone, head, params, "
                "metrics, labels, sample_count, annotation_counter, train_seconds, decision, "
                "trigger, created_at) VALUES ('function_old', 1, 'deployed', 'tiny', 'logistic', "
                "'{}', '{}', '[]', 0, 0, 0.0, '{}', 'manual', CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()

    upgraded = make_engine(url)  # what starting the new version does
    try:
        inspector = inspect(upgraded)
        assert "novelmark" in inspector.get_table_names()
        assert "kind" in {c["name"] for c in inspector.get_columns("reviewitem")}
        assert "confirmed_label_id" in {c["name"] for c in inspector.get_columns("sample")}
        assert "artifact_sha256" in {c["name"] for c in inspector.get_columns("modelversion")}
        assert "ix_reviewitem_kind" in {i["name"] for i in inspector.get_indexes("reviewitem")}
        with upgraded.connect() as connection:
            kind = connection.execute(text("SELECT kind FROM reviewitem")).scalar_one()
            digest = connection.execute(text("SELECT artifact_sha256 FROM modelversion")).one()
        assert kind == "capture"  # the old row got the column's default
        assert digest == (None,)  # an older artifact's digest is unknown: it is not loaded
    finally:
        upgraded.dispose()
    make_engine(url).dispose()  # a second start finds nothing to add


def test_a_required_column_without_a_default_is_refused_clearly(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'winnow.db'}")
    table = Table("t", MetaData(), Column("n", Integer, nullable=False), Column("s", String))
    with pytest.raises(SchemaUpgradeError, match="t.n"):
        _add_column_sql(engine, "t", table.c.n)
    assert _add_column_sql(engine, "t", table.c.s).endswith("ADD COLUMN s VARCHAR")

"""Create the schema, and bring a database made by an earlier winnow up to date.

Every change to winnow's tables so far only added tables and columns, so an upgrade is: create
what is missing (``create_all`` makes new tables and their indexes), then add each column a table
lacks, with its default filled in on existing rows, and its index. A change that is not additive
(a rename, a new constraint on old rows) would need a real migration tool (Alembic revisions);
none exists yet.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel


class SchemaUpgradeError(RuntimeError):
    """A column cannot be added to existing rows (required, with no default to fill them)."""


def create_or_upgrade(engine: Engine) -> list[str]:
    """Create missing tables, add missing columns; returns the ``table.column`` names added.

    Callers hold a lock across processes (two replicas upgrading at once would both add).
    """
    SQLModel.metadata.create_all(engine)
    existing = inspect(engine)
    added: list[str] = []
    for table in SQLModel.metadata.sorted_tables:
        present = {column["name"] for column in existing.get_columns(table.name)}
        missing = [column for column in table.columns if column.name not in present]
        if not missing:
            continue
        with engine.begin() as connection:
            for column in missing:
                connection.execute(text(_add_column_sql(engine, table.name, column)))
                added.append(f"{table.name}.{column.name}")
            for index in list(table.indexes):
                if any(column in index.columns.values() for column in missing):
                    index.create(connection, checkfirst=True)
    return added


def _add_column_sql(engine: Engine, table: str, column: Column[Any]) -> str:
    """``ALTER TABLE ... ADD COLUMN`` with the column's type and, for existing rows, its default."""
    preparer = engine.dialect.identifier_preparer
    kind = column.type.compile(dialect=engine.dialect)
    sql = f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {preparer.quote(column.name)} {kind}"
    default = _scalar_default(column)
    if default is not None:
        literal = column.type.literal_processor(dialect=engine.dialect)
        rendered = literal(default) if literal is not None else repr(default)
        sql += f" DEFAULT {rendered}"
        if not column.nullable:
            sql += " NOT NULL"
    elif not column.nullable:
        raise SchemaUpgradeError(
            f"cannot add required column {table}.{column.name} to existing rows: it has no "
            "default; start from a new data directory or migrate the database by hand"
        )
    return sql


def _scalar_default(column: Column[Any]) -> Any:
    """The column's Python-side default when it is a plain value (not a function), else None."""
    default = column.default
    if default is None or not getattr(default, "is_scalar", False):
        return None
    return default.arg  # type: ignore[attr-defined]

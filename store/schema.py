"""Bring a database made by a winnow from before migrations to the first revision's shape.

Those databases have winnow's tables but no ``alembic_version``; every change to their tables only
added tables and columns, so bringing one up is: create what is missing (``create_all`` makes new
tables and their indexes), then add each column a table lacks, with its default filled in on
existing rows, and its index. :mod:`store.migrate` then stamps the database at the first revision
and upgrades it like any other; later changes are Alembic revisions, never code here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, MetaData, inspect, text
from sqlalchemy.engine import Connection


class SchemaUpgradeError(RuntimeError):
    """A column cannot be added to existing rows (required, with no default to fill them)."""


def create_or_upgrade(connection: Connection, metadata: MetaData) -> list[str]:
    """Create ``metadata``'s missing tables, add missing columns; returns the ``table.column``
    names added.

    Callers hold a lock across processes (two replicas upgrading at once would both add).
    """
    metadata.create_all(connection)
    existing = inspect(connection)
    added: list[str] = []
    for table in metadata.sorted_tables:
        present = {column["name"] for column in existing.get_columns(table.name)}
        missing = [column for column in table.columns if column.name not in present]
        for column in missing:
            connection.execute(text(_add_column_sql(connection, table.name, column)))
            added.append(f"{table.name}.{column.name}")
        for index in list(table.indexes):
            if any(column in index.columns.values() for column in missing):
                index.create(connection, checkfirst=True)
    return added


def _add_column_sql(connection: Connection, table: str, column: Column[Any]) -> str:
    """``ALTER TABLE ... ADD COLUMN`` with the column's type and, for existing rows, its default."""
    dialect = connection.dialect
    preparer = dialect.identifier_preparer
    kind = column.type.compile(dialect=dialect)
    sql = f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {preparer.quote(column.name)} {kind}"
    default = _scalar_default(column)
    if default is not None:
        literal = column.type.literal_processor(dialect=dialect)
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

"""Alembic's migration environment: runs on the connection :mod:`store.migrate` hands it.

There is no ``alembic.ini`` and no URL here: winnow builds the ``Config`` in code and passes the
connection in ``config.attributes["connection"]`` (the engine's own, so SQLite pragmas and the
PostgreSQL pool settings apply).
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlmodel import SQLModel

import store  # noqa: F401  (registers every table on SQLModel.metadata, the autogenerate target)


def _render_item(kind: str, item: Any, autogen_context: AutogenContext) -> Literal[False]:
    """Autogenerate writes SQLModel's column types (``sqlmodel.sql.sqltypes.AutoString()``):
    the revision then imports that module."""
    if kind == "type" and type(item).__module__ == "sqlmodel.sql.sqltypes":
        assert autogen_context.imports is not None
        autogen_context.imports.add("import sqlmodel.sql.sqltypes")
    return False  # the default rendering


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite alters a table by copying it; batch mode lets a revision say op.alter_column anyway.
    render_as_batch=True,
    compare_type=True,
    render_item=_render_item,
)
with context.begin_transaction():
    context.run_migrations()

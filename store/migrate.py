"""Schema migrations: Alembic revisions in ``store/migrations/versions``, run from code.

:func:`upgrade_schema` runs at every start (``make_engine``): a new database is created by the
revisions, one at an older revision is upgraded, one made by a winnow from before migrations
(tables, no ``alembic_version``) is first brought to the first revision's shape by
:mod:`store.schema` and stamped there. A database at a revision this code does not know was
written by a newer winnow and is refused.

A developer who changed the tables writes the next revision with
``make migration MESSAGE="what changed"`` (:func:`new_revision`), then reads and edits it.
"""

from __future__ import annotations

import io
import logging
import tempfile
from pathlib import Path
from typing import Any

from alembic import command, op
from alembic.config import Config
from alembic.operations import Operations, ops
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Index, MetaData, Table, create_engine, inspect
from sqlalchemy.engine import Connection, Engine

from store.schema import create_or_upgrade

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# The schema of the last winnow without migrations; such databases are stamped here.
FIRST_REVISION = "0001"


class SchemaTooNewError(RuntimeError):
    """The database is at a revision this winnow does not know: a newer winnow migrated it."""


def upgrade_schema(engine: Engine) -> None:
    """Create the schema, or upgrade it to this code's head revision; logs what it did.

    Callers hold ``shared_lock(engine, "schema")`` so that replicas starting together upgrade
    once. On PostgreSQL the whole upgrade is one transaction: a failure leaves the database as
    it was.

    Raises:
        SchemaTooNewError: the database's revision is not one of this code's revisions.
    """
    with engine.begin() as connection:
        config = _config(connection)
        scripts = ScriptDirectory.from_config(config)
        head = scripts.get_current_head()
        current = MigrationContext.configure(connection).get_current_revision()
        if current is not None and current not in {s.revision for s in scripts.walk_revisions()}:
            raise SchemaTooNewError(
                f"the database is at schema revision {current!r}, which this winnow does not "
                f"know (its newest is {head!r}): a newer winnow upgraded it; run that version, "
                "or restore a backup taken before the upgrade"
            )
        if current == head:
            return
        if current is None and inspect(connection).has_table("function"):
            added = create_or_upgrade(connection, first_revision_metadata())
            if added:
                log.warning("brought the database up to date: added %s", ", ".join(added))
            command.stamp(config, FIRST_REVISION)
            current = FIRST_REVISION
        command.upgrade(config, "head")
    if current is None:
        log.info("created the database schema at revision %s", head)
    elif current != head:
        log.warning("upgraded the database schema from revision %s to %s", current, head)


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision; None for a database without one (new, or pre-migration)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(_config(None)).get_current_head()
    assert head is not None, "store/migrations/versions holds no revision"
    return head


def first_revision_metadata() -> MetaData:
    """The tables and indexes the first revision creates, read from the revision itself.

    Frozen in the revision, unlike ``SQLModel.metadata``, which follows the latest revision: a
    pre-migration database must reach the first revision's shape, never a later one, before the
    later revisions run on it.
    """
    metadata = MetaData()
    context = MigrationContext.configure(
        dialect_name="sqlite", opts={"as_sql": True, "output_buffer": io.StringIO()}
    )
    module = ScriptDirectory.from_config(_config(None)).get_revision(FIRST_REVISION).module
    namespace = vars(module)  # the revision's globals: its ``op`` is alembic's proxy
    namespace["op"] = _Recorder(context, metadata)
    try:
        module.upgrade()
    finally:
        namespace["op"] = op
    return metadata


class _Recorder(Operations):
    """Operations that add tables and indexes to a MetaData instead of running them."""

    def __init__(self, context: MigrationContext, metadata: MetaData) -> None:
        super().__init__(context)
        self.metadata = metadata

    def invoke(self, operation: Any) -> Any:
        if isinstance(operation, ops.CreateTableOp):
            return Table(operation.table_name, self.metadata, *operation.columns, **operation.kw)
        if isinstance(operation, ops.CreateIndexOp):
            table = self.metadata.tables[operation.table_name]
            if not all(isinstance(name, str) for name in operation.columns):
                raise TypeError(f"the first revision indexes columns by name: {operation!r}")
            columns = [table.c[str(name)] for name in operation.columns]
            return Index(operation.index_name, *columns, unique=operation.unique)
        raise TypeError(f"the first revision may only create tables and indexes: {operation!r}")


def new_revision(message: str) -> Path:
    """Autogenerate the next revision file from ``SQLModel.metadata``; returns its path.

    Alembic compares the models with a scratch SQLite database migrated to head, so the file holds
    exactly what changed since the last revision. Revisions are numbered ``0002``, ``0003``...
    Read the result: autogenerate does not see renames (it writes a drop and an add) and knows no
    values to fill a new required column on existing rows.
    """
    if not message.strip():
        raise ValueError('say what changed: make migration MESSAGE="add label events"')
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'head.db'}")
        try:
            with engine.begin() as connection:
                config = _config(connection)
                # The project's lint and format run on the new file (ruff, from the dev extras).
                config.set_section_option("post_write_hooks", "hooks", "lint, format")
                for hook, options in (("lint", "check --fix"), ("format", "format")):
                    config.set_section_option("post_write_hooks", f"{hook}.type", "module")
                    config.set_section_option("post_write_hooks", f"{hook}.module", "ruff")
                    config.set_section_option(
                        "post_write_hooks", f"{hook}.options", f"{options} REVISION_SCRIPT_FILENAME"
                    )
                count = sum(1 for _ in ScriptDirectory.from_config(config).walk_revisions())
                command.upgrade(config, "head")
                script = command.revision(
                    config, message=message, autogenerate=True, rev_id=f"{count + 1:04d}"
                )
        finally:
            engine.dispose()
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


def _config(connection: Connection | None) -> Config:
    """Alembic's configuration, built in code: no ``alembic.ini`` is read at run time."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config

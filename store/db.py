"""Engine construction: SQLite (WAL, synchronous=FULL) by default, PostgreSQL by URL."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, make_url, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from store import keys, novel_marks, tables, traffic  # noqa: F401  (registers the tables on SQLModel.metadata)
from store.migrate import upgrade_schema


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``, and create or upgrade the schema to this version's
    (:func:`store.migrate.upgrade_schema`, under a lock shared by every replica).

    SQLite gets WAL journaling with ``synchronous=FULL`` so that an acknowledged commit survives
    a process kill or power loss, foreign keys on, and a busy timeout so concurrent writers wait
    instead of failing. Any other URL (``postgresql+psycopg://...``) is passed to SQLAlchemy as is.
    JSON columns store NaN and infinities as null on both, because PostgreSQL rejects them.
    A new SQLite file is created ``0600``; SQLite gives its ``-wal`` and ``-shm`` files the same.

    Raises:
        store.migrate.SchemaTooNewError: a newer winnow upgraded the database.
    """
    if url.startswith("sqlite"):
        _create_private_file(make_url(url).database)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_serializer=_json_dumps,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=20, json_serializer=_json_dumps
        )
    try:
        with shared_lock(engine, "schema"):
            upgrade_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


@contextmanager
def shared_lock(engine: Engine, name: str, *, wait: bool = True) -> Iterator[bool]:
    """Hold the lock ``name`` across every process using the database; yields whether it is held.

    On PostgreSQL a session advisory lock, on a connection kept for the purpose: it ends with the
    block, or with the process if that dies. With ``wait`` the block waits for the lock; without,
    it yields False at once when another process holds it. SQLite has no such lock and always
    yields True: there one process owns the database.

    Args:
        engine: from :func:`make_engine`.
        name: what is locked, e.g. ``"train:<function id>"``.
        wait: wait for the lock rather than give up.
    """
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    with engine.connect() as connection:
        if wait:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        elif not connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": key}
        ).scalar():
            yield False
            return
        connection.commit()  # the lock is the session's; no transaction is left open meanwhile
        try:
            yield True
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


def _create_private_file(path: str | None) -> None:
    """Create the database file readable by its owner only, unless in memory or present."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _json_dumps(value: Any) -> str:
    """JSON text with non-finite floats (a metric over zero samples is NaN) written as null."""
    return json.dumps(_finite(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

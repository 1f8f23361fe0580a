"""Database backends for tests: SQLite in the temp data dir, or a fresh PostgreSQL database.

Tests marked ``databases`` run once per backend (see ``pytest_generate_tests`` in conftest). The
PostgreSQL server is ``WINNOW_TEST_POSTGRES`` (default: trust auth as ``postgres`` on
127.0.0.1:5432, maintenance database ``test``); each test gets its own database, created before
and dropped (``WITH (FORCE)``, closing leftover connections) after. Without a reachable server the
PostgreSQL variants are skipped with the reason.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

BACKENDS = ("sqlite", "postgres")
POSTGRES_URL = os.environ.get("WINNOW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def backend_params(backends: tuple[str, ...]) -> list[object]:
    """Parametrize values: the PostgreSQL one carries the ``postgres`` marker (``-m postgres``)."""
    return [pytest.param(b, marks=pytest.mark.postgres) if b == "postgres" else b for b in backends]


@functools.cache
def postgres_unreachable() -> str | None:
    """Why the test server cannot be used, or None when it answers (checked once per session)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[dev]')"
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"no PostgreSQL at {POSTGRES_URL} ({first_line}); set WINNOW_TEST_POSTGRES"


def _with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``, with SQLAlchemy's psycopg 3 driver."""
    base, _, _ = url.rpartition("/")
    scheme, _, rest = base.partition("://")
    if scheme in ("postgresql", "postgres"):
        scheme = "postgresql+psycopg"
    return f"{scheme}://{rest}/{name}"


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create ``winnow_<random>``, yield its SQLAlchemy URL, drop it afterwards."""
    reason = postgres_unreachable()
    if reason is not None:
        pytest.skip(reason)
    import psycopg

    name = f"winnow_{secrets.token_hex(6)}"
    admin_url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(POSTGRES_URL, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database_url_for(backend: str) -> Iterator[str]:
    """The ``Settings.database_url`` of a test on ``backend`` ("" = SQLite in the data dir)."""
    if backend == "sqlite":
        yield ""
    elif backend == "postgres":
        with fresh_postgres_database() as url:
            yield url
    else:
        raise ValueError(f"unknown database backend {backend!r}")

"""``winnow serve`` on a database it cannot use says why in one line, with no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from api.cli import main
from store import make_engine


def test_serve_refuses_a_database_a_newer_winnow_upgraded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'winnow.db'}")
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_label_claims'"))
    engine.dispose()

    assert main(["serve", "--data-dir", str(tmp_path), "--backbone", "tiny-clip"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("winnow: the database is at schema revision '0099_label_claims'")
    assert "Traceback" not in error

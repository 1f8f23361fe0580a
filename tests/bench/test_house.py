"""bench.house reads the code's shape: every package counted, no module in an import circle."""

from __future__ import annotations

import pytest

from bench import house


def test_this_checkout_has_no_import_cycles(capsys: pytest.CaptureFixture[str]) -> None:
    house.main([])
    out = capsys.readouterr().out
    for package in (*house.PACKAGES, house.CLIENT):
        assert out.count(f"{package} ") >= 1, out
    assert "import cycles (groups of modules importing each other): 0" in out

"""The browser tests' shared setup (tests/api/conftest.py) where Debian's chromium is missing."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("program", ["CHROMIUM", "CHROMEDRIVER"])
def test_the_browser_fixture_skips_naming_the_packages_to_install(
    program: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setattr(f"bench.review_browser.{program}", None)
    with pytest.raises(pytest.skip.Exception, match="chromium and chromium-driver"):
        request.getfixturevalue("browser")

"""The browser tests' setup: Debian's headless chromium, the app served in a thread, screenshots.

The driver itself is bench/review_browser.py's (the review-speed benchmark drives it too), and so
is ``open_with_key``, which opens a page with a key already entered.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.review_browser import chromium
from service.settings import Settings
from tests.api.live import threaded_server
from tests.conftest import AUTH


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless chromium (window 1280x1000) keeping its console and network logs; the test is
    skipped, with the reason, where chromium or chromedriver is not installed."""
    try:
        driver = chromium(network_log=True)
    except RuntimeError as exc:
        pytest.skip(str(exc))
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def served(settings: Settings) -> Iterator[tuple[str, httpx.Client]]:
    """The app served in a thread on ``settings``: its URL, and a client sending the admin key."""
    with (
        threaded_server(settings) as url,
        httpx.Client(base_url=url, headers=AUTH, timeout=60) as http,
    ):
        yield url, http


@pytest.fixture
def screenshot(browser: Any, tmp_path: Path) -> Callable[[str], Path]:
    """Save the window as a PNG named ``name`` under the test's tmp dir, copied to
    $WINNOW_SCREENSHOTS if set (the pictures in docs/images are taken that way)."""

    def save(name: str) -> Path:
        path = tmp_path / name
        assert browser.save_screenshot(str(path))
        if os.environ.get("WINNOW_SCREENSHOTS"):
            target = Path(os.environ["WINNOW_SCREENSHOTS"])
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / name)
        return path

    return save

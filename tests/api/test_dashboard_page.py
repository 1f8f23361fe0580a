"""The dashboard page in headless chromium: every chart and table drawn, nothing refused by CSP."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.settings import Settings
from bench.review_browser import chromium, wait_for
from bench.review_speed import seed_review_queue
from tests.api.live import threaded_server
from tests.conftest import ADMIN_KEY, AUTH

pytestmark = pytest.mark.browser


def save_screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    """A PNG of the window under the test's tmp dir, copied to $WINNOW_SCREENSHOTS if set (the
    pictures in docs/ are taken that way)."""
    path = tmp_path / name
    assert driver.save_screenshot(str(path))
    if os.environ.get("WINNOW_SCREENSHOTS"):
        target = Path(os.environ["WINNOW_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return path


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        driver = chromium(network_log=True)
    except RuntimeError as exc:
        pytest.skip(str(exc))
    yield driver
    driver.quit()


def test_dashboard_draws_history_matrix_queue_and_labels(
    settings: Settings, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with (
        threaded_server(settings) as url,
        httpx.Client(base_url=url, headers=AUTH, timeout=60) as http,
    ):
        fid, truth = seed_review_queue(http, 12, seed=1, name="colours")
        # review half of the queue, retrain: a second version with more samples
        items = list(truth.items())[:6]
        body = {"items": [{"itemId": item, "labelName": label} for item, label in items]}
        assert http.post(f"/v1/functions/{fid}/review/annotate", json=body).status_code == 200
        assert http.post(f"/v1/functions/{fid}/train").status_code == 200

        browser.get(f"{url}/dashboard?function={fid}")
        wait_for(lambda: "401" in browser.find_element(By.ID, "message").text, what="no key")
        browser.find_element(By.ID, "apikey").send_keys(ADMIN_KEY + Keys.ENTER)
        loaded = "return document.body.dataset.loaded === 'ok'"
        wait_for(lambda: browser.execute_script(loaded), what="every part of the dashboard")
        assert browser.find_element(By.ID, "message").text == ""
        for chart in ("historychart", "confusion", "activitychart", "labelschart"):
            width = browser.execute_script(
                f"return document.getElementById('{chart}').naturalWidth"
            )
            assert width > 300, chart
        rows = browser.find_elements(By.CSS_SELECTOR, "#versions tbody tr")
        # newest first (a version 0 is the zero-shot head, where the backbone has a text tower)
        assert [r.get_attribute("data-version") for r in rows][:2] == ["2", "1"]
        assert "6 pending" in browser.find_element(By.ID, "queuecounts").text
        queue = browser.find_element(By.ID, "queuecounts").text
        assert "12 captured" in queue and "capture rate" in queue, queue
        facts = browser.find_element(By.ID, "trainingfacts").text
        assert "v2" in facts or "v1" in facts
        assert "3 labels, 18 labelled samples" in browser.find_element(By.ID, "labelsummary").text
        console = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not [e for e in console if "favicon.ico" not in e and "401" not in e], console
        browser.set_window_size(1280, 1400)
        shot = save_screenshot(browser, tmp_path, "dashboard.png")
        assert shot.stat().st_size > 20_000

"""The dashboard page in headless chromium: every chart and table drawn (the reviewers' too),
nothing refused by CSP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.live import wait_until
from bench.review_speed import CLASSES, seed_review_queue
from service.settings import Settings
from tests.api.conftest import served
from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.browser


def test_dashboard_draws_history_matrix_queue_and_labels(
    settings: Settings, browser: Any, screenshot: Callable[[str], Path]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with served(settings) as (url, http):
        fid, truth = seed_review_queue(http, 12, seed=1, name="colours")
        # review half of the queue, retrain: a second version with more samples
        items = list(truth.items())[:6]
        body = {"items": [{"itemId": item, "labelName": label} for item, label in items]}
        assert http.post(f"/v1/functions/{fid}/review/annotate", json=body).status_code == 200
        assert http.post(f"/v1/functions/{fid}/train").status_code == 200
        # two reviewers vote on two items that need both: one agreed, one disputed
        policy = {"reviewsPerItem": 2}
        assert http.put(f"/v1/functions/{fid}/capture-policy", json=policy).status_code == 200
        (agreed, label), (disputed, _) = list(truth.items())[6:8]
        other = next(name for name in CLASSES if name != label)
        for reviewer, votes in (("ana", (label, label)), ("bo", (label, other))):
            wanted = {"functionId": fid, "scopes": ["annotate"], "reviewer": reviewer}
            key = http.post("/v1/keys", json=wanted).json()["key"]
            for item, vote in zip((agreed, disputed), votes, strict=True):
                annotated = http.post(
                    f"/v1/functions/{fid}/review/{item}/annotate",
                    json={"labelName": vote},
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert annotated.status_code == 200, annotated.text

        browser.get(f"{url}/dashboard?function={fid}")
        wait_until(lambda: "401" in browser.find_element(By.ID, "message").text, what="no key")
        browser.find_element(By.ID, "apikey").send_keys(ADMIN_KEY + Keys.ENTER)
        loaded = "return document.body.dataset.loaded === 'ok'"
        wait_until(lambda: browser.execute_script(loaded), what="every part of the dashboard")
        assert browser.find_element(By.ID, "message").text == ""
        for chart in ("historychart", "confusion", "activitychart", "labelschart"):
            width = browser.execute_script(
                f"return document.getElementById('{chart}').naturalWidth"
            )
            assert width > 300, chart
        rows = browser.find_elements(By.CSS_SELECTOR, "#versions tbody tr")
        # newest first (a version 0 is the zero-shot head, where the backbone has a text tower)
        assert [r.get_attribute("data-version") for r in rows][:2] == ["2", "1"]
        queue = browser.find_element(By.ID, "queuecounts").text
        assert "4 pending · 7 annotated · 1 disputed" in queue, queue
        assert "12 captured" in queue and "capture rate" in queue, queue
        facts = browser.find_element(By.ID, "trainingfacts").text
        assert "v2" in facts or "v1" in facts
        team = [
            [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in browser.find_elements(By.CSS_SELECTOR, "#reviewers tbody tr")
        ]
        # reviewer, votes, disputed, estimated accuracy, kappa, gold accuracy ("-": no gold items)
        assert [row[:3] + row[5:6] for row in team] == [
            ["ana", "2", "1", "-"],
            ["bo", "2", "1", "-"],
        ], team
        assert "3 labels, 19 labelled samples" in browser.find_element(By.ID, "labelsummary").text
        console = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not [e for e in console if "favicon.ico" not in e and "401" not in e], console
        browser.set_window_size(1280, 1400)
        shot = screenshot("dashboard.png")
        assert shot.stat().st_size > 20_000

"""New-class proposals on the review page, in headless chromium: a grid of each proposal's
items, accept with a typed label name (leaving an item out), dismiss with a key; and "none of
these labels" on a capture."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.live import wait_until
from bench.review_browser import open_with_key
from service.settings import Settings
from tests.api.conftest import served
from tests.conftest import (
    ADMIN_KEY,
    GREEN,
    PROPOSAL_POLICY,
    add_colour_samples,
    data_uri,
    png_bytes,
    wait_for_novelty,
)

pytestmark = pytest.mark.browser


def _function_with_a_green_proposal(http: httpx.Client, name: str) -> tuple[str, list[str]]:
    fid = http.post("/v1/functions", json={"name": name}).json()["id"]
    add_colour_samples(http, fid, per_label=8)  # type: ignore[arg-type]
    assert http.post(f"/v1/functions/{fid}/train").status_code == 200
    assert http.put(f"/v1/functions/{fid}/capture-policy", json=PROPOSAL_POLICY).status_code == 200
    wait_for_novelty(http, fid)
    items = []
    for seed in range(100, 108):
        body = {"data": data_uri(png_bytes(GREEN, seed=seed))}
        items.append(
            http.post(f"/v1/functions/{fid}/invoke", json=body).json()["capture"]["itemId"]
        )
    proposals = http.get(f"/v1/functions/{fid}/proposals").json()["data"]
    assert [set(p["itemIds"]) for p in proposals] == [set(items)], proposals
    return fid, items


def test_accept_a_proposal_with_a_typed_name_leaving_one_item_out(
    settings: Settings, browser: Any, screenshot: Callable[[str], Path]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with served(settings) as (url, http):
        fid, items = _function_with_a_green_proposal(http, "accept")
        open_with_key(browser, f"{url}/review?function={fid}&mode=proposals", ADMIN_KEY)
        loaded = "return [...document.querySelectorAll('.proposal .thumbs img')].filter((i) => i.naturalWidth).length"
        wait_until(
            lambda: browser.execute_script(loaded) == len(items), what="the proposal's images"
        )
        card = browser.find_element(By.CSS_SELECTOR, ".proposal")
        assert card.find_element(By.TAG_NAME, "h2").text.startswith("8 similar inputs")
        left_out = items[-1]
        browser.find_element(By.CSS_SELECTOR, f".thumbs img[data-item='{left_out}']").click()
        assert "left-out" in browser.find_element(
            By.CSS_SELECTOR, f"img[data-item='{left_out}']"
        ).get_attribute("class")
        browser.find_element(By.TAG_NAME, "body").send_keys("n")  # focuses the name field
        browser.switch_to.active_element.send_keys("green")
        screenshot("proposal-review.png")
        browser.switch_to.active_element.send_keys(Keys.ENTER)

        wait_until(
            lambda: "Created label green" in browser.find_element(By.ID, "message").text,
            what="accepted",
        )
        message = browser.find_element(By.ID, "message")
        assert message.get_attribute("class") == "done"  # a success, not in the error red
        assert message.value_of_css_property("color") == "rgba(21, 128, 61, 1)"
        browser.find_element(By.ID, "mode-single").click()  # another tab: the success stays behind
        wait_until(lambda: message.text == "", what="the message cleared")
        labels = [label["name"] for label in http.get(f"/v1/functions/{fid}/labels").json()["data"]]
        assert "green" in labels
        annotated = http.get(f"/v1/functions/{fid}/review", params={"status": "annotated"}).json()[
            "data"
        ]
        assert {i["id"] for i in annotated} == set(items[:-1])
        assert {i["labelName"] for i in annotated} == {"green"}
        pending = http.get(f"/v1/functions/{fid}/review", params={"status": "pending"}).json()[
            "data"
        ]
        assert left_out in {i["id"] for i in pending}


def test_dismiss_a_proposal_with_a_key_and_mark_a_capture_none_of_these(
    settings: Settings, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    with served(settings) as (url, http):
        fid, items = _function_with_a_green_proposal(http, "dismiss")
        open_with_key(browser, f"{url}/review?function={fid}&mode=proposals", ADMIN_KEY)
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, ".proposal"), what="the proposal")
        browser.find_element(By.TAG_NAME, "body").send_keys("d")
        wait_until(
            lambda: browser.find_element(By.ID, "noproposals").is_displayed(), what="no proposals"
        )
        assert http.get(f"/v1/functions/{fid}/proposals").json()["count"] == 0

        # one at a time, "none of these labels" (n) on a capture: the item is set aside as novel
        open_with_key(browser, f"{url}/review?function={fid}&mode=single", ADMIN_KEY)
        shown = "return document.getElementById('image').dataset.item || ''"
        first = wait_until(lambda: browser.execute_script(shown), what="an item")
        browser.find_element(By.TAG_NAME, "body").send_keys("n")
        wait_until(lambda: browser.execute_script(shown) != first, what="the next item")
        skipped = http.get(f"/v1/functions/{fid}/review", params={"status": "skipped"}).json()[
            "data"
        ]
        assert [i["id"] for i in skipped] == [first]

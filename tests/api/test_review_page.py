"""The review page in a real headless browser (Debian chromium) against a running server."""

from __future__ import annotations

from typing import Any

import pytest

from bench.live import wait_until
from service.settings import Settings
from tests.api.conftest import served
from tests.conftest import add_colour_samples, data_uri, png_bytes

pytestmark = pytest.mark.browser


def test_label_an_item_with_the_keyboard(settings: Settings, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with served(settings) as (url, http):
        fid = http.post("/v1/functions", json={"name": "colour", "labels": ["red", "blue"]}).json()[
            "id"
        ]
        add_colour_samples(http, fid, per_label=3)  # type: ignore[arg-type]
        assert http.post(f"/v1/functions/{fid}/train").status_code == 200
        http.put(f"/v1/functions/{fid}/capture-policy", json={"randomRate": 1.0})
        captured = http.post(
            f"/v1/functions/{fid}/invoke",
            json={"data": data_uri(png_bytes((200, 120, 30), seed=77))},
        ).json()
        item_id = captured["capture"]["itemId"]
        assert item_id

        # A reviewer's key: annotate scope on this function only.
        key = http.post("/v1/keys", json={"functionId": fid, "scopes": ["annotate"]}).json()["key"]
        browser.get(f"{url}/review?function={fid}")
        message = browser.find_element(By.ID, "message")  # no key yet: a prompt, not an error
        wait_until(lambda: "API key with annotate scope" in message.text)
        assert message.get_attribute("class") == "prompt"
        assert message.value_of_css_property("color") != "rgba(185, 28, 28, 1)"  # not the error red
        browser.find_element(By.ID, "apikey").send_keys(key + Keys.ENTER)
        wait_until(
            lambda: browser.find_element(By.ID, "image").get_attribute("data-item") == item_id
        )
        assert "random" in browser.find_element(By.ID, "reason").text
        assert "1 pending" in browser.find_element(By.ID, "progress").text
        labels = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#labels button")]
        assert labels[0].endswith("red") and labels[1].endswith("blue")

        browser.find_element(By.TAG_NAME, "body").send_keys("2")  # "blue", via the keyboard

        def annotated():
            items = http.get(f"/v1/functions/{fid}/review", params={"status": "annotated"}).json()[
                "data"
            ]
            return items[0] if items else None

        item = wait_until(annotated)
        assert item["id"] == item_id and item["labelName"] == "blue"

        def review_labels() -> list[str]:
            page = http.get(f"/v1/functions/{fid}/samples", params={"annotated": "true"}).json()
            return [s["annotation"]["labelName"] for s in page["data"] if s["source"] == "review"]

        assert review_labels() == ["blue"]
        wait_until(
            lambda: (
                "empty" in browser.find_element(By.ID, "empty").text
                and browser.find_element(By.ID, "empty").is_displayed()
            )
        )
        # u brings the item back; another label corrects its sample (no second sample, no 409).
        browser.find_element(By.TAG_NAME, "body").send_keys("u")
        wait_until(
            lambda: browser.find_element(By.ID, "image").get_attribute("data-item") == item_id
        )
        browser.find_element(By.TAG_NAME, "body").send_keys("1")
        wait_until(lambda: review_labels() == ["red"])
        assert annotated()["labelName"] == "red"
        assert "409" not in browser.find_element(By.ID, "message").text

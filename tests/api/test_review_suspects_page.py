"""Mislabel suspects on the review page, in headless chromium: "labelled X, model says Y", with
a key for each choice."""

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
from tests.conftest import ADMIN_KEY, BLUE, RED, data_uri, png_bytes

pytestmark = pytest.mark.browser
COLOURS = {"red": RED, "blue": BLUE, "green": (30, 200, 30)}
FLIPS = [("red", "blue", 100), ("blue", "green", 101)]  # (true colour, given label, seed)


def _add(http: httpx.Client, fid: str, colour: str, label: str, seed: int) -> str:
    body = {
        "data": data_uri(png_bytes(COLOURS[colour], seed=seed)),
        "annotation": {"labelName": label},
    }
    response = http.post(f"/v1/functions/{fid}/samples", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _label_of(http: httpx.Client, fid: str, sample_id: str) -> str:
    return http.get(f"/v1/functions/{fid}/samples/{sample_id}").json()["annotation"]["labelName"]


def test_suspects_show_both_labels_and_take_either_with_a_key(
    settings: Settings, browser: Any, screenshot: Callable[[str], Path]
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    with served(settings) as (url, http):
        fid = http.post("/v1/functions", json={"name": "colours", "labels": list(COLOURS)}).json()[
            "id"
        ]
        for seed in range(8):
            for colour in COLOURS:
                _add(http, fid, colour, colour, seed)
        flipped = {_add(http, fid, true, given, seed): (true, given) for true, given, seed in FLIPS}
        assert http.post(f"/v1/functions/{fid}/train").status_code == 200
        suspects = http.get(f"/v1/functions/{fid}/review", params={"kind": "suspect"}).json()[
            "data"
        ]
        assert set(flipped) <= {s["sampleId"] for s in suspects}

        open_with_key(browser, f"{url}/review?function={fid}&mode=suspects", ADMIN_KEY)
        decided: dict[str, str] = {}
        for n, suspect in enumerate(suspects):
            wait_until(
                lambda s=suspect: (
                    browser.find_element(By.ID, "image").get_attribute("data-item") == s["id"]
                ),
                what="suspect shown",
            )
            line = browser.find_element(By.CSS_SELECTOR, "#suspect .suspect-line").text
            assert (
                line == f"Labelled {suspect['givenLabel']}, model says {suspect['suggestedLabel']}"
            )
            assert not browser.find_element(By.ID, "capturemeta").is_displayed()
            if n == 0:
                screenshot("suspect-review.png")
            # the planted flips take the model's label (m); any false alarm keeps its own (k)
            planted = suspect["sampleId"] in flipped
            ActionChains(browser).send_keys("m" if planted else "k").perform()
            decided[suspect["sampleId"]] = suspect["suggestedLabel" if planted else "givenLabel"]
        wait_until(
            lambda: browser.find_element(By.ID, "empty").is_displayed(), what="no suspects left"
        )
        assert "No mislabel suspects" in browser.find_element(By.ID, "empty").text
        for sample_id, label in decided.items():
            assert _label_of(http, fid, sample_id) == label
        for sample_id, (true, _given) in flipped.items():
            assert decided[sample_id] == true

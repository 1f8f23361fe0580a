"""Grid review in headless chromium: a page of 20 labelled with keys, sent as one bulk request;
undo before and after submitting; and a scripted reviewer's time, grid vs one at a time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.live import wait_until
from bench.review_browser import open_with_key, sent_requests
from bench.review_speed import (
    CLASSES,
    key_of,
    review_in_grid,
    review_one_at_a_time,
    seed_review_queue,
)
from service.settings import Settings
from tests.api.conftest import served
from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.browser
BULK = "/review/annotate"


def _tiles(browser: Any) -> list[tuple[str, str]]:
    script = "return [...document.querySelectorAll('#tiles .tile')].map((t) => [t.dataset.item, t.dataset.label])"
    return [tuple(t) for t in browser.execute_script(script)]


def _page_shown(browser: Any, after: str = "") -> str:
    page = "return document.getElementById('tiles').dataset.page || ''"
    return wait_until(lambda: (p := browser.execute_script(page)) != after and p, what="grid page")


def _keys(browser: Any, keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).send_keys(keys).perform()


def _annotations(http: httpx.Client, fid: str) -> dict[str, str]:
    page = http.get(f"/v1/functions/{fid}/review", params={"status": "annotated", "count": 1000})
    return {item["id"]: item["labelName"] for item in page.json()["data"]}


def test_a_page_of_20_labelled_with_keys_in_one_bulk_request(
    settings: Settings, browser: Any, screenshot: Callable[[str], Path]
) -> None:
    with served(settings) as (url, http):
        fid, truth = seed_review_queue(http, 25, seed=3, name="grid")
        open_with_key(browser, f"{url}/review?function={fid}&mode=grid", ADMIN_KEY)
        page = _page_shown(browser)
        tiles = _tiles(browser)
        assert len(tiles) == 20
        predicted = {
            i["id"]: i["predictedLabel"]
            for i in http.get(f"/v1/functions/{fid}/review", params={"count": 100}).json()["data"]
        }
        assert all(label == predicted[item] for item, label in tiles)  # preselected

        # A wrong key on the first tile, undone: the tile has its predicted label again.
        wrong = next(name for name in CLASSES if name != tiles[0][1])
        _keys(browser, key_of(wrong))
        assert _tiles(browser)[0][1] == wrong
        _keys(browser, "u")
        assert _tiles(browser)[0][1] == tiles[0][1]

        # the focused image's nearest labelled samples, beside the grid
        neighbours = "return [...document.querySelectorAll('#neighbourlist img')].filter((i) => i.naturalWidth).length"
        wait_until(lambda: browser.execute_script(neighbours) == 4, what="nearest labelled samples")
        screenshot("grid-review.png")
        sent_requests(browser)  # forget the page's loading requests
        presses = "".join(
            " " if label == truth[item] else key_of(truth[item]) for item, label in tiles
        )
        _keys(browser, presses + "\n")
        _page_shown(browser, after=page)
        assert len(_tiles(browser)) == 5  # the rest of the queue

        requests = [r for r in sent_requests(browser) if r["method"] == "POST"]
        claims = [r for r in requests if r["url"].endswith(f"/v1/functions/{fid}/review/claim")]
        assert len(claims) == 1  # the next page, reserved to this reviewer
        posts = [r for r in requests if r not in claims]
        assert len(posts) == 1 and posts[0]["url"].endswith(f"/v1/functions/{fid}{BULK}"), posts
        sent = {a["itemId"]: a["labelName"] for a in posts[0]["body"]["items"]}
        assert len(posts[0]["body"]["items"]) == 20
        assert sent == {item: truth[item] for item, _ in tiles}
        assert _annotations(http, fid) == sent

        # Undo after submitting reopens that page; a correction relabels the item's sample.
        page = browser.execute_script("return document.getElementById('tiles').dataset.page")
        _keys(browser, "u")
        _page_shown(browser, after=page)
        assert [item for item, _ in _tiles(browser)] == [item for item, _ in tiles]
        first = tiles[0][0]
        relabel = next(name for name in CLASSES if name != truth[first])
        _keys(browser, key_of(relabel) + "\n")
        wait_until(lambda: _annotations(http, fid)[first] == relabel, what="the correction")
        sent = [r for r in sent_requests(browser) if r["method"] in ("POST", "PUT")]
        sent = [r for r in sent if not r["url"].endswith("/review/claim")]
        assert [(r["method"], r["body"]) for r in sent] == [("PUT", {"labelName": relabel})]
        assert len(_annotations(http, fid)) == 20


@pytest.mark.slow
def test_scripted_reviewer_labels_100_items_grid_vs_one_at_a_time(
    settings: Settings, browser: Any
) -> None:
    """The times are printed, not asserted (``python -m bench.review_speed`` records them)."""
    with served(settings) as (url, http):
        open_with_key(browser, f"{url}/review", ADMIN_KEY)
        runs = []
        for mode, reviewer in (("single", review_one_at_a_time), ("grid", review_in_grid)):
            fid, truth = seed_review_queue(http, 100, seed=0, name=mode)
            runs.append(reviewer(browser, url, fid, truth, 100))
            assert _annotations(http, fid) == truth
        single, grid = runs
        assert single.requests == 100 and grid.requests == 5  # one bulk request per page of 20
        print(f"\n100 items: one at a time {single.seconds:.2f} s, grid {grid.seconds:.2f} s")


def test_one_at_a_time_u_brings_back_the_last_item_to_relabel(
    settings: Settings, browser: Any
) -> None:
    with served(settings) as (url, http):
        fid, truth = seed_review_queue(http, 3, seed=4, name="single")
        open_with_key(browser, f"{url}/review?function={fid}&mode=single", ADMIN_KEY)
        shown = "return document.getElementById('image').dataset.item || ''"
        first = wait_until(lambda: browser.execute_script(shown), what="first item")
        wrong = next(name for name in CLASSES if name != truth[first])
        _keys(browser, key_of(wrong))
        wait_until(lambda: browser.execute_script(shown) not in ("", first), what="second item")
        assert _annotations(http, fid) == {first: wrong}
        _keys(browser, "u")  # the first item again: relabel it
        wait_until(lambda: browser.execute_script(shown) == first, what="the first item back")
        _keys(browser, key_of(truth[first]))
        wait_until(lambda: _annotations(http, fid) == {first: truth[first]}, what="the relabel")
        assert "1 reviewed this session" in browser.find_element("id", "progress").text


def test_two_reviewers_in_two_browsers_never_get_the_same_item(
    settings: Settings, browser: Any
) -> None:
    """Alice and Bob open the grid at once, each in their own chromium with their own reviewer
    key: each page is a claim, so they see disjoint pages; after Alice submits hers, her next
    page holds none of Bob's items either."""
    from bench.review_browser import chromium

    second = chromium(network_log=True)
    try:
        with served(settings) as (url, http):
            fid, truth = seed_review_queue(http, 45, seed=5, name="team")
            keys = {}
            for name in ("alice", "bob"):
                body = {"functionId": fid, "scopes": ["annotate"], "reviewer": name}
                keys[name] = http.post("/v1/keys", json=body).json()["key"]
            open_with_key(browser, f"{url}/review?function={fid}&mode=grid", keys["alice"])
            open_with_key(second, f"{url}/review?function={fid}&mode=grid", keys["bob"])
            alice_page, bob_page = _page_shown(browser), _page_shown(second)
            alice, bob = {i for i, _ in _tiles(browser)}, {i for i, _ in _tiles(second)}
            assert len(alice) == len(bob) == 20 and not alice & bob
            presses = "".join(key_of(truth[item]) for item, _ in _tiles(browser))
            _keys(browser, presses + "\n")
            _page_shown(browser, after=alice_page)
            rest = {i for i, _ in _tiles(browser)}
            assert len(rest) == 5 and not rest & bob and not rest & alice
            assert set(_annotations(http, fid)) == alice  # Alice's votes decided her page
            assert _page_shown(second) == bob_page  # Bob's page stayed his
    finally:
        second.quit()

"""Review speed: a scripted reviewer labels N queued items in the browser, one at a time and in
grid mode, and the wall time of each is measured.

The service runs in this process (uvicorn in a thread, the tiny test backbone, SQLite in a temp
dir) and Debian's chromium is driven by selenium. The queue holds colour images of three classes
(red, green, blue); a fifth are murky mixes whose true class the model often gets wrong, so the
reviewer has labels to fix. The reviewer knows every item's true class and presses keys only:

* one at a time: for each item, wait until its image shows, press its label's digit (the page
  sends one annotate request and shows the next item);
* grid: for each page of 20, wait until all its images show, read the preselected labels, press
  Space (keep) or the right digit (fix) for each tile, then Enter (one bulk request per page).

What is timed is the machine's part of reviewing (requests, image loads, rendering), not a
person's time to look at an image, which is the same in both modes. Keystrokes are counted too.

Usage (from the repository root)::

    python -m bench.review_speed              # 100 items per mode, 3 repeats
    python -m bench.review_speed --items 40 --repeats 1

Writes ``bench/results/review_speed.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runnable as ``python bench/review_speed.py``
    sys.path.insert(0, str(ROOT))

from bench.live import wait_until  # noqa: E402
from bench.results_file import write_result  # noqa: E402
from bench.review_browser import chromium, data_uri_png, open_with_key  # noqa: E402

ADMIN_KEY = "bench-admin-key"
CLASSES = {"red": (220, 30, 30), "green": (30, 190, 30), "blue": (30, 30, 220)}
CAPTURE_ALL = {"randomRate": 1.0, "duplicateSimilarity": 1.0, "maxPerHour": 100_000}
CAPTURE_ALL["maxPerDay"] = 100_000
WAIT_SECONDS = 120.0  # for one page or item to show: generous, the machines here are shared


@dataclass
class Run:
    mode: str
    items: int
    seconds: float
    keystrokes: int
    requests: int  # annotation requests the page sent
    fixes: int  # items whose preselected (predicted) label the reviewer changed


def seed_review_queue(http: httpx.Client, items: int, *, seed: int, name: str) -> tuple[str, dict]:
    """A trained function with ``items`` pending captures; returns its id and each item's true
    label. About a fifth of the images are murky mixes of two colours (true class: the larger)."""
    rng = np.random.default_rng(seed)
    fid = http.post("/v1/functions", json={"name": name, "labels": list(CLASSES)}).json()["id"]
    for _ in range(4):
        for label, colour in CLASSES.items():
            body = {"data": data_uri_png(colour, rng, noise=10), "annotation": {"labelName": label}}
            assert http.post(f"/v1/functions/{fid}/samples", json=body).status_code == 201
    assert http.post(f"/v1/functions/{fid}/train").status_code == 200, "training failed"
    assert http.put(f"/v1/functions/{fid}/capture-policy", json=CAPTURE_ALL).status_code == 200
    names = list(CLASSES)
    truth: dict[str, str] = {}
    while len(truth) < items:
        label = names[int(rng.integers(len(names)))]
        colour = np.array(CLASSES[label], dtype=float)
        if rng.random() < 0.2:  # murky: mostly this class, partly another
            other = np.array(CLASSES[names[int(rng.integers(len(names)))]], dtype=float)
            colour = 0.55 * colour + 0.45 * other
        body = {"data": data_uri_png(tuple(colour), rng, noise=25)}
        answer = http.post(f"/v1/functions/{fid}/invoke", json=body).json()
        item_id = (answer.get("capture") or {}).get("itemId")
        if item_id:
            truth[item_id] = label
    return fid, truth


def key_of(label: str) -> str:
    return str(list(CLASSES).index(label) + 1)


def review_one_at_a_time(driver: Any, url: str, fid: str, truth: dict, items: int) -> Run:
    """Label ``items`` items in single mode with one digit each; seconds from the first image
    shown to the last annotation stored (the page then shows the next item or the empty queue)."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver.get(f"{url}/review?function={fid}&mode=single")
    current = "return document.getElementById('image').dataset.item || ''"
    shown = wait_until(lambda: driver.execute_script(current), what="first item")
    started, keys = time.perf_counter(), 0
    for _ in range(items):
        ActionChains(driver).send_keys(key_of(truth[shown])).perform()
        keys += 1
        previous = shown
        shown = wait_until(
            lambda previous=previous: _next_single(driver, previous),
            what=lambda: (
                "next item; the page says "
                + driver.execute_script("return document.getElementById('message').textContent")
            ),
            timeout=WAIT_SECONDS,
        )
    return Run("one at a time", items, time.perf_counter() - started, keys, keys, fixes=0)


def _next_single(driver: Any, previous: str) -> str | None:
    item, empty = driver.execute_script(
        "return [document.getElementById('image').dataset.item || '',"
        " !document.getElementById('empty').hidden]"
    )
    if item and item != previous:
        return str(item)
    return "(empty)" if empty else None


def review_in_grid(driver: Any, url: str, fid: str, truth: dict, items: int) -> Run:
    """Label ``items`` items in grid mode: per page, Space or a digit per tile, then Enter.
    Seconds from the first page's images shown to the last page's annotations stored."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver.get(f"{url}/review?function={fid}&mode=grid")
    page = wait_until(lambda: _grid_page(driver, ""), what="first grid page")
    started, keys, requests, done, fixes = time.perf_counter(), 0, 0, 0, 0
    while done < items:
        tiles = driver.execute_script(
            "return [...document.querySelectorAll('#tiles .tile')]"
            ".map((t) => [t.dataset.item, t.dataset.label])"
        )
        presses = [" " if label == truth[item] else key_of(truth[item]) for item, label in tiles]
        fixes += sum(press != " " for press in presses)
        ActionChains(driver).send_keys("".join(presses) + "\n").perform()
        keys, requests, done = keys + len(presses) + 1, requests + 1, done + len(tiles)
        page = wait_until(
            lambda page=page: _grid_page(driver, page),
            timeout=WAIT_SECONDS,
            what=lambda: (
                "next grid page; the page says "
                + driver.execute_script("return document.getElementById('message').textContent")
            ),
        )
    return Run("grid", done, time.perf_counter() - started, keys, requests, fixes)


def _grid_page(driver: Any, previous: str) -> str | None:
    page, empty = driver.execute_script(
        "return [document.getElementById('tiles').dataset.page || '',"
        " !document.getElementById('empty').hidden]"
    )
    if page and page != previous:
        return str(page)
    return "(empty)" if empty else None


def measure(items: int, repeats: int) -> list[Run]:
    from bench.live import threaded_server
    from service.settings import Settings

    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp), backbone="tiny-clip", retrain_interval=0, admin_key=ADMIN_KEY
        )
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with (
            threaded_server(settings) as url,
            httpx.Client(base_url=url, headers=auth, timeout=60) as http,
        ):
            driver = chromium()
            try:
                open_with_key(driver, f"{url}/review", ADMIN_KEY)
                for repeat in range(repeats):
                    for mode, reviewer in (
                        ("single", review_one_at_a_time),
                        ("grid", review_in_grid),
                    ):
                        name = f"speed-{mode}-{repeat}"
                        fid, truth = seed_review_queue(http, items, seed=repeat, name=name)
                        run = reviewer(driver, url, fid, truth, items)
                        _check_labels(http, fid, truth)
                        print(f"repeat {repeat}: {run.mode:>13} {run.seconds:6.2f} s")
                        runs.append(run)
            finally:
                driver.quit()
    return runs


def _check_labels(http: httpx.Client, fid: str, truth: dict) -> None:
    """Every item was annotated with its true label (the timing counts only correct work)."""
    page = http.get(f"/v1/functions/{fid}/review", params={"status": "annotated", "count": 1000})
    labels = {item["id"]: item["labelName"] for item in page.json()["data"]}
    assert labels == truth, "the scripted reviewer's labels were not all stored"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    runs = measure(args.items, args.repeats)
    summary = {}
    for mode in ("one at a time", "grid"):
        seconds = [r.seconds for r in runs if r.mode == mode]
        chosen = [r for r in runs if r.mode == mode]
        summary[mode] = {
            "seconds_mean": statistics.mean(seconds),
            "seconds_min": min(seconds),
            "seconds_max": max(seconds),
            "keystrokes": chosen[0].keystrokes,
            "annotation_requests": chosen[0].requests,
            "labels_fixed": [r.fixes for r in chosen],
        }
        print(
            f"{mode:>13}: {summary[mode]['seconds_mean']:.2f} s mean "
            f"({min(seconds):.2f}-{max(seconds):.2f}), {chosen[0].keystrokes} keys, "
            f"{chosen[0].requests} annotation requests"
        )
    write_result(
        ROOT / "bench" / "results" / "review_speed.json",
        {
            "command": "python -m bench.review_speed"
            + f" --items {args.items} --repeats {args.repeats}",
            "machine": f"{platform.machine()}, {shutil.which('chromium')}",
            "items": args.items,
            "repeats": args.repeats,
            "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
            "summary": summary,
            "runs": [asdict(r) for r in runs],
        },
    )


if __name__ == "__main__":
    main()

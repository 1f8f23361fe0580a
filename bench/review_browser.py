"""Driving the web pages in Debian's headless chromium: the browser, the key, waits, small images.

Shared by the review-speed benchmark and the browser tests (their fixtures: tests/api/conftest.py).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from typing import Any, TypeVar

import numpy as np
from PIL import Image

T = TypeVar("T")

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
)


def chromium(*, network_log: bool = False) -> Any:
    """A headless chromium under selenium; ``network_log`` keeps the DevTools network events
    (read them with :func:`sent_requests`) and the console log."""
    if not (CHROMIUM and CHROMEDRIVER):
        raise RuntimeError("needs Debian packages chromium and chromium-driver")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    if network_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    return webdriver.Chrome(service=service, options=options)


def open_with_key(driver: Any, url: str, key: str) -> None:
    """Open the page at ``url`` with ``key`` already entered (kept in the tab's session storage,
    where the pages' key field puts it)."""
    driver.get(url)
    driver.execute_script("sessionStorage.setItem('winnowKey', arguments[0])", key)
    driver.refresh()


def sent_requests(driver: Any) -> list[dict[str, Any]]:
    """Requests the page sent since the last call: ``{method, url, body}`` (body: JSON or None)."""
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] != "Network.requestWillBeSent":
            continue
        request = message["params"]["request"]
        body = request.get("postData")
        requests.append(
            {
                "method": request["method"],
                "url": request["url"],
                "body": json.loads(body) if body else None,
            }
        )
    return requests


def data_uri_png(
    colour: tuple[float, ...], rng: np.random.Generator, *, noise: float, size: int = 32
) -> str:
    """A ``size``-pixel square PNG of ``colour`` with Gaussian noise, as a data URI."""
    pixels = np.clip(np.array(colour) + rng.normal(0, noise, (size, size, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

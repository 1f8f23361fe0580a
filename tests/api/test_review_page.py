"""The review page in a real headless browser (Debian chromium) against a running server."""

import shutil
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from api.app import create_app
from service.settings import Settings
from tests.conftest import ADMIN_KEY, AUTH, add_colour_samples, data_uri, png_bytes

pytestmark = pytest.mark.browser

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    port = _free_port()
    settings = Settings(
        data_dir=tmp_path, backbone="tiny-clip", retrain_interval=0, port=port, admin_key=ADMIN_KEY
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian packages chromium and chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options
    )
    yield driver
    driver.quit()


def _wait(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_label_an_item_with_the_keyboard(server: str, browser) -> None:
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    http = httpx.Client(base_url=server, timeout=60, headers=AUTH)
    fid = http.post("/v1/functions", json={"name": "colour", "labels": ["red", "blue"]}).json()[
        "id"
    ]
    add_colour_samples(http, fid, per_label=3)  # type: ignore[arg-type]
    assert http.post(f"/v1/functions/{fid}/train").status_code == 200
    http.put(f"/v1/functions/{fid}/capture-policy", json={"randomRate": 1.0})
    captured = http.post(
        f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes((200, 120, 30), seed=77))}
    ).json()
    item_id = captured["capture"]["itemId"]
    assert item_id

    # A reviewer's key: annotate scope on this function only.
    key = http.post("/v1/keys", json={"functionId": fid, "scopes": ["annotate"]}).json()["key"]
    browser.get(f"{server}/review?function={fid}")
    message = browser.find_element(By.ID, "message")  # no key yet: a prompt, not an error
    _wait(lambda: "API key with annotate scope" in message.text)
    assert message.get_attribute("class") == "prompt"
    assert message.value_of_css_property("color") != "rgba(185, 28, 28, 1)"  # not the error red
    browser.find_element(By.ID, "apikey").send_keys(key + Keys.ENTER)
    _wait(lambda: browser.find_element(By.ID, "image").get_attribute("data-item") == item_id)
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

    item = _wait(annotated)
    assert item["id"] == item_id and item["labelName"] == "blue"

    def review_labels() -> list[str]:
        page = http.get(f"/v1/functions/{fid}/samples", params={"annotated": "true"}).json()
        return [s["annotation"]["labelName"] for s in page["data"] if s["source"] == "review"]

    assert review_labels() == ["blue"]
    _wait(
        lambda: (
            "empty" in browser.find_element(By.ID, "empty").text
            and browser.find_element(By.ID, "empty").is_displayed()
        )
    )
    # u brings the item back; another label corrects its sample (no second sample, no 409).
    browser.find_element(By.TAG_NAME, "body").send_keys("u")
    _wait(lambda: browser.find_element(By.ID, "image").get_attribute("data-item") == item_id)
    browser.find_element(By.TAG_NAME, "body").send_keys("1")
    _wait(lambda: review_labels() == ["red"])
    assert annotated()["labelName"] == "red"
    assert "409" not in browser.find_element(By.ID, "message").text

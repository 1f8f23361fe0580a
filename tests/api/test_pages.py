"""The HTML pages (/docs, /redoc, /review, /dashboard): assets served by this app, and security headers."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.settings import Settings
from tests.api.live import threaded_server, wait_until

PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect", "/review", "/dashboard")
ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
ASSET = re.compile(r'<(?:script|link)\b[^>]*?\b(?:src|href)="([^"]+)"', re.IGNORECASE)
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def anonymous(client: TestClient) -> TestClient:
    return TestClient(client.app)


def csp(response: Any) -> dict[str, list[str]]:
    """The response's Content-Security-Policy as ``{directive: sources}``."""
    directives = (part.split() for part in response.headers["content-security-policy"].split(";"))
    return {words[0]: words[1:] for words in directives if words}


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/review", "/dashboard"])
def test_pages_load_every_asset_from_this_app(client: TestClient, page: str) -> None:
    anon = anonymous(client)  # the pages and their files are open: no key
    response = anon.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "cdn." not in response.text and "googleapis" not in response.text
    assets = ASSET.findall(response.text)
    assert assets, response.text
    for url in assets:
        assert url.startswith("/static/"), url  # no http(s):// or //host
        served = anon.get(url)
        assert served.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert ASSET_TYPES[suffix] in served.headers["content-type"], (url, served.headers)
        assert served.headers["x-content-type-options"] == "nosniff"
    if page == "/docs":
        assert {a.rsplit("/", 1)[1] for a in assets} == {
            "swagger-ui.css",
            "swagger-ui-bundle.js",
            "favicon.png",
        }
        assert "/docs/oauth2-redirect" in response.text
    if page == "/redoc":  # its script fetches nothing from elsewhere either (its logo did)
        [script] = [a for a in assets if a.endswith(".js")]
        assert "cdn.redoc.ly" not in anon.get(script).text


def test_openapi_still_served_and_static_files_left_out_of_it(client: TestClient) -> None:
    schema = anonymous(client).get("/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/v1/functions" in paths
    assert not [path for path in paths if path.startswith(("/static", "/docs", "/redoc"))]
    assert "/review" not in paths and "/dashboard" not in paths


@pytest.mark.parametrize("page", PAGES)
def test_pages_send_a_strict_csp_and_no_framing(client: TestClient, page: str) -> None:
    response = anonymous(client).get(page)
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    policy = csp(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    scripts, styles = " ".join(policy["script-src"]), " ".join(policy["style-src"])
    assert "unsafe" not in scripts and "*" not in scripts + styles
    # ReDoc adds <style> elements as it renders; only its page, which holds no key, allows that.
    assert ("'unsafe-inline'" in styles) == (page == "/redoc")
    # Inline scripts run only by the hash of their exact text; our own pages have none at all.
    inline = INLINE_SCRIPT.findall(response.text)
    assert policy["script-src"] == ["'self'", *map(sha256_source, inline)]
    if page in ("/review", "/dashboard"):
        assert not inline and "<style" not in response.text
        assert not re.search(r"\son[a-z]+=", response.text), "inline event handler"
    if page == "/docs":
        assert len(inline) == 1 and "SwaggerUIBundle(" in inline[0]


def test_api_responses_are_nosniff_and_unframeable(client: TestClient) -> None:
    for response in (
        client.get("/v1/functions"),
        client.get("/health"),
        anonymous(client).get("/v1/functions"),  # 401
        client.get("/v1/functions/function_00000000000000000000"),  # 404
        client.get("/openapi.json"),
    ):
        assert response.headers["content-type"].startswith("application/json"), response.url
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert csp(response) == {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}


def _console_errors(browser: Any) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.mark.browser
def test_pages_render_in_a_browser_under_their_csp(settings: Settings, browser: Any) -> None:
    """Swagger UI and ReDoc draw the API from local files; nothing is refused by the CSP."""
    from selenium.webdriver.common.by import By

    def text_of(selector: str) -> str:
        found = browser.find_elements(By.CSS_SELECTOR, selector)
        return str(found[0].text) if found else ""

    with threaded_server(settings) as url:
        browser.get(f"{url}/docs")
        wait_until(lambda: "winnow" in text_of(".swagger-ui .info .title"), what="Swagger UI")
        # "Try it out" on GET /health: Swagger UI's fetch is allowed too (connect-src 'self').
        browser.find_element(By.CSS_SELECTOR, "[data-path='/health']").click()
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, ".try-out__btn"))[0].click()
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, ".execute"))[0].click()
        wait_until(lambda: '"status": "ok"' in text_of(".live-responses-table"), what="response")
        assert _console_errors(browser) == []

        browser.get(f"{url}/redoc")
        wait_until(lambda: "winnow" in text_of("h1"), what="ReDoc")
        wait_until(lambda: "/v1/functions" in browser.page_source, what="ReDoc operations")
        assert _console_errors(browser) == []  # not even ReDoc's logo from its CDN

        browser.get(f"{url}/review")  # no key yet: the page's script asks for one
        wait_until(lambda: "API key" in text_of("#message"), what="review page script")
        assert (
            browser.find_element(By.TAG_NAME, "header").value_of_css_property("background-color")
            == "rgba(28, 25, 23, 1)"
        )  # review.css applied
        # Only the expected failures (the 401 without a key, no /favicon.ico), no CSP refusals.
        errors = _console_errors(browser)
        assert not [e for e in errors if "401" not in e and "favicon.ico" not in e], errors

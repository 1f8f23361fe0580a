"""Security headers on every response: a strict CSP on HTML pages, nosniff and no framing on all.

The review page holds an API key, so no other site may frame it and it may run only scripts this
app serves. A page with an inline script or style it cannot avoid (Swagger UI's start-up script)
allows exactly that text by its SHA-256 through :func:`allow_inline`. Scripts never get
``'unsafe-inline'``.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi.responses import HTMLResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "Content-Security-Policy"
# Pages load scripts, styles and fetches only from this app. Images may also be blob: (the review
# page shows each item's image from a fetched blob) and data: (the icons inside Swagger UI's CSS).
PAGE_POLICY: dict[str, list[str]] = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:", "blob:"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
# JSON, images and files: nothing in them runs, and no page may frame them.
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
}

_INLINE = re.compile(r"<(script|style)\b([^>]*)>(.*?)</\1\s*>", re.DOTALL | re.IGNORECASE)
_HAS_SRC = re.compile(r"\bsrc\s*=", re.IGNORECASE)


def page_policy(html: str = "", extra: dict[str, list[str]] | None = None) -> str:
    """The CSP for a page: :data:`PAGE_POLICY`, ``extra`` sources, hashes of ``html``'s inline code.

    Each inline ``<script>``/``<style>`` in ``html`` is allowed by its SHA-256; browsers ignore
    ``'unsafe-inline'`` beside a hash, so a directive that has it gets no hashes.
    """
    policy = {directive: list(sources) for directive, sources in PAGE_POLICY.items()}
    for directive, sources in (extra or {}).items():
        policy.setdefault(directive, []).extend(sources)
    for match in _INLINE.finditer(html):
        tag, attributes, text = match.group(1).lower(), match.group(2), match.group(3)
        if tag == "script" and _HAS_SRC.search(attributes):
            continue  # a script file, allowed (or not) by its origin
        sources = policy[f"{tag}-src"]
        if "'unsafe-inline'" not in sources:
            digest = hashlib.sha256(text.encode("utf-8")).digest()
            sources.append(f"'sha256-{base64.b64encode(digest).decode('ascii')}'")
    return "; ".join(" ".join([directive, *sources]) for directive, sources in policy.items())


def allow_inline(response: HTMLResponse, extra: dict[str, list[str]] | None = None) -> HTMLResponse:
    """``response`` with a CSP that runs its own inline scripts and styles, and no others."""
    response.headers[CSP] = page_policy(bytes(response.body).decode("utf-8"), extra)
    return response


class SecurityHeadersMiddleware:
    """Adds the headers above to every HTTP response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers.setdefault(name, value)
                is_page = headers.get("content-type", "").startswith("text/html")
                headers.setdefault(CSP, page_policy() if is_page else API_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)

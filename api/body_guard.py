"""Request bodies checked as they stream in, before anything parses them: a 413 for a body over
``--max-body-mb`` and a 400 for JSON nested deeper than :data:`MAX_JSON_DEPTH`.

Python's ``json`` parser recurses once per level and raises ``RecursionError`` near 1,000 levels
(fewer on a deep stack), so a 2 KB body of brackets could fail any JSON route, whoever parses it
(FastAPI for declared bodies, :mod:`api.inputs` for image inputs). Counting the nesting on the raw
bytes bounds it for every route at once.
"""

from __future__ import annotations

import numpy as np
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from service.errors import PayloadTooLarge

# Deepest JSON nesting accepted. winnow's and the Nyckel adapter's bodies nest 4 levels at most
# (``{"items": [{"data": ...}]}``); 64 leaves room for any client's wrapping and stays far below
# the depth where parsing or validation recurses into trouble.
MAX_JSON_DEPTH = 64

_NOT_STRUCTURE = bytes(set(range(256)) - set(b'"[]{}'))
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # each bracket as an int8: +1 or -1


class BodyRefused(StarletteHTTPException):
    """Raised from ``receive``: an HTTPException, which FastAPI's body parsing lets through (it
    turns other errors into a vague 400), so the error handlers answer it as ``{message}``."""


class JsonNesting:
    """The nesting depth of a JSON text fed in chunks; raises :class:`BodyRefused` past ``limit``.

    Brackets inside strings do not count; a string may span chunks, and so may an escape. Every
    step works on whole chunks in C (``bytes`` methods, numpy), so a 20 MB body costs
    milliseconds. Malformed JSON is left to the parser, which stops at its first unmatched bracket.
    """

    def __init__(self, limit: int = MAX_JSON_DEPTH) -> None:
        self.limit = limit
        self.depth = 0
        self._in_string = False
        self._escaped = False  # the previous chunk ended on an unpaired backslash

    def feed(self, chunk: bytes) -> None:
        if self._escaped and chunk:
            chunk, self._escaped = chunk[1:], False
        # Without escaped backslashes and quotes, a string is its quotes and what lies between
        # them. Pairs are removed left to right, as a parser reads them; the other escapes (\n,
        # \u...) hold no quote or bracket. An unpaired backslash left at the end escapes the
        # next chunk's first byte.
        text = chunk.replace(b"\\\\", b"")
        if text.endswith(b"\\"):
            text, self._escaped = text[:-1], True
        text = text.replace(b'\\"', b"")
        pieces = text.translate(None, _NOT_STRUCTURE).split(b'"')
        outside = pieces[1 if self._in_string else 0 :: 2]
        self._in_string ^= len(pieces) % 2 == 0  # an odd number of quotes
        brackets = b"".join(outside)
        if not brackets:
            return
        steps = np.frombuffer(brackets.translate(_STEPS), dtype=np.int8)
        depths = self.depth + np.cumsum(steps, dtype=np.int64)
        if depths.max() > self.limit:
            raise BodyRefused(400, f"JSON nested too deeply: more than {self.limit} levels")
        self.depth = max(int(depths[-1]), 0)


def _is_json(content_type: str) -> bool:
    """As FastAPI decides to parse a body as JSON: no content type, ``application/json`` or
    ``application/*+json``."""
    media_type = content_type.split(";")[0].strip().lower()
    return media_type in ("", "application/json") or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class BodyGuardMiddleware:
    """Refuses an oversized body (by its ``Content-Length`` before the app runs, else as the bytes
    arrive) and over-nested JSON, as JSON ``{message}`` errors."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        too_large = f"the request body is larger than {self.max_bytes} bytes (--max-body-mb)"
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(PayloadTooLarge(too_large))(scope, receive, send)
            return
        nesting = JsonNesting() if _is_json(headers.get("content-type", "")) else None
        received = 0

        async def guarded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > self.max_bytes:
                    raise BodyRefused(413, too_large)
                if nesting is not None:
                    nesting.feed(body)
            return message

        await self.app(scope, guarded_receive, send)

"""Turning what a caller holds (a path, bytes, a PIL image, a URL) into the ``data`` field, and
telling image files from other files by their first bytes (no decoding, no Pillow needed)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

# A path, raw bytes, a PIL image (anything with ``save``), or an http(s) / data: URL.
ImageLike = str | Path | bytes | Any

# The formats the service decodes (embeddings.ALLOWED_FORMATS) by their file signatures.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


def sniff_image_type(head: bytes) -> str | None:
    """The MIME type of an image the service can decode, from its first 12 bytes; else None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for signature, mime in _SIGNATURES:
        if head.startswith(signature):
            return mime
    return None


def is_image_file(path: Path) -> bool:
    """Whether ``path`` starts like an image the service decodes (cheap: reads 12 bytes)."""
    try:
        with path.open("rb") as file:
            return sniff_image_type(file.read(12)) is not None
    except OSError:
        return False


def image_bytes(image: ImageLike) -> bytes:
    """The encoded bytes of a path, bytes or PIL image (saved as PNG)."""
    if isinstance(image, str | Path):
        return Path(image).read_bytes()
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image)
    if hasattr(image, "save"):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    raise TypeError(f"cannot send {type(image).__name__} as an image")


def data_field(image: ImageLike) -> str:
    """The ``data`` field of a request: URLs and data URIs pass through, the rest become a data
    URI (its MIME type sniffed from the bytes; the service sniffs again and decides)."""
    if isinstance(image, str) and image.startswith(("http://", "https://", "data:")):
        return image
    raw = image_bytes(image)
    mime = sniff_image_type(raw[:12]) or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"

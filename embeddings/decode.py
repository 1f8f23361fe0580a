"""Safe decoding of untrusted upload bytes into an RGB Pillow image.

Order matters for safety: the format is sniffed from the header and checked against an allow-list,
then the pixel count declared in the header is checked, and only then are pixels decoded. Every
failure becomes an :class:`~embeddings.errors.InvalidImage` subclass with a message a client can
act on; no raw Pillow/OS error escapes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image, ImageChops, ImageOps

from embeddings.errors import (
    CorruptImage,
    EmptyImage,
    ImageTooLarge,
    InvalidImage,
    UnsupportedImageFormat,
)
from embeddings.pixels import to_rgb

#: Formats Pillow may parse. Animated GIF/WebP are accepted; only their first frame is decoded.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "GIF")

#: Default pixel budget: 40 megapixels is a large photo; a decoded RGB copy is ~120 MB.
DEFAULT_MAX_PIXELS = 40_000_000

_MIME_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "GIF": "image/gif",
}
_SNIFF_BYTES = 16  # Pillow's own plugins identify formats from the first 16 bytes


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode upload bytes into an upright RGB image.

    Only the first frame of animated images is decoded (frames are never iterated, so a GIF with
    thousands of frames costs one frame). EXIF orientation is applied, transparency is flattened
    onto white and every pixel mode is converted by :func:`embeddings.pixels.to_rgb`.

    The pixel limit is enforced from the header before decoding; Pillow's global
    ``MAX_IMAGE_PIXELS`` is left untouched (it may still emit its own ``DecompressionBombWarning``
    for a header between ~89 and ~179 megapixels, and refuses anything larger, which is reported
    as :class:`ImageTooLarge` as well).

    Args:
        data: the raw file bytes as uploaded.
        max_pixels: largest accepted ``width * height`` according to the header.

    Returns:
        A fully loaded RGB image that does not reference ``data``.

    Raises:
        EmptyImage: ``data`` is empty.
        UnsupportedImageFormat: the bytes are not one of :data:`ALLOWED_FORMATS`.
        ImageTooLarge: the header declares more than ``max_pixels`` pixels.
        CorruptImage: the bytes claim an allowed format but cannot be decoded (e.g. truncated).
    """
    with _opened(data, max_pixels) as source:
        source.load()  # decodes the current (= first) frame only
        image: Image.Image = source
        if _is_plain_cmyk_jpeg(source):
            # Pillow always reads CMYK JPEG with Adobe's inverted polarity; files without
            # the Adobe APP14 marker store plain CMYK, so undo that inversion.
            image = ImageChops.invert(source)
        # exif_transpose always returns a new image, detached from the file being closed
        return to_rgb(ImageOps.exif_transpose(image))


def declared_pixels(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    """The ``width * height`` that decoding ``data`` will produce, read from its header alone.

    Runs the checks :func:`decode_image` runs before decoding, so a caller can reserve memory
    for the pixels (:class:`embeddings.pixel_budget.PixelBudget`) before any are decoded.

    Args:
        data: the raw file bytes as uploaded.
        max_pixels: largest accepted ``width * height`` according to the header.

    Raises:
        the errors of :func:`decode_image` that its header checks raise.
    """
    with _opened(data, max_pixels) as source:
        width, height = source.size
        return width * height


@contextmanager
def _opened(data: bytes, max_pixels: int) -> Iterator[Image.Image]:
    """``data`` opened by Pillow (nothing decoded yet) after the format and size checks; any
    failure, in here or in the caller's block, becomes an :class:`InvalidImage`."""
    if not data:
        raise EmptyImage("the image is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS)) as source:
            _check_pixel_count(source.size, max_pixels)
            yield source
    except InvalidImage:
        raise
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(f"the image is too large to decode safely ({error})") from error
    except Image.UnidentifiedImageError as error:
        raise _unidentified(data) from error
    except Exception as error:  # any decoder failure on untrusted bytes is the client's problem
        raise CorruptImage(
            f"the image data is corrupt or truncated ({type(error).__name__}: {error})"
        ) from error


def _is_plain_cmyk_jpeg(image: Image.Image) -> bool:
    """True for a CMYK JPEG without the Adobe APP14 marker (i.e. not stored inverted)."""
    return image.format in ("JPEG", "MPO") and image.mode == "CMYK" and "adobe" not in image.info


def _check_pixel_count(size: tuple[int, int], max_pixels: int) -> None:
    """Reject a header whose declared size is empty or over the pixel budget."""
    width, height = size
    if width <= 0 or height <= 0:
        raise CorruptImage(f"the image header declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height} pixels; "
            f"the limit is {max_pixels} pixels"
        )


def _unidentified(data: bytes) -> InvalidImage:
    """Explain why Pillow could not open ``data`` with the allowed formats."""
    detected = sniff_format(data)
    allowed = ", ".join(ALLOWED_FORMATS)
    if detected is None:
        return CorruptImage(f"the data is not a recognisable image; allowed formats: {allowed}")
    if detected in ALLOWED_FORMATS:
        return CorruptImage(f"the {detected} header is malformed")
    return UnsupportedImageFormat(
        f"image format {detected} is not supported; allowed formats: {allowed}"
    )


def sniff_mime_type(data: bytes) -> str:
    """MIME type for serving stored image bytes back (``application/octet-stream`` if unknown).

    Args:
        data: raw file bytes (only the first 16 are looked at).
    """
    return _MIME_TYPES.get(sniff_format(data) or "", "application/octet-stream")


def sniff_format(data: bytes) -> str | None:
    """Name the image format whose signature ``data`` starts with, without parsing anything else.

    Uses the signature checks of every Pillow plugin (allowed or not), so an unsupported format can
    be named in the error message. Returns None when no plugin recognises the bytes.

    Args:
        data: raw file bytes (only the first 16 are looked at).
    """
    prefix = data[:_SNIFF_BYTES]
    Image.init()
    for format_name, (_factory, accepts) in Image.OPEN.items():
        if accepts is None:  # plugins without a signature check would claim any bytes
            continue
        try:
            recognised = accepts(prefix)
        except Exception:  # a buggy signature check must not break error reporting
            continue
        if recognised and not isinstance(recognised, str):  # a str is a warning, not a match
            return format_name
    return None

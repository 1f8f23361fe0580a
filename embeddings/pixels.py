"""Convert any Pillow pixel mode to 8-bit RGB the way a person would see the image.

Backbones want RGB, but uploads arrive as palettes, greyscale, 16-bit scans, CMYK print files and
images with transparency. A naive ``convert("RGB")`` clips 16-bit images to white and turns
transparent pixels black, so each family of modes gets an explicit rule here.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from embeddings.errors import UnsupportedImageFormat

#: Transparent pixels are composited onto this fixed colour, so one image always gives one vector.
BACKGROUND_COLOR = (255, 255, 255)

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_SIXTEEN_BIT_TO_EIGHT_BIT = 65535 / 255  # = 257: maps 0..65535 exactly onto 0..255


def to_rgb(image: Image.Image) -> Image.Image:
    """Return ``image`` as an 8-bit RGB image (a new object unless it already was plain RGB).

    Rules: alpha (an alpha band or a ``transparency`` entry, e.g. a palette's transparent index) is
    composited on :data:`BACKGROUND_COLOR`; 16-bit and 32-bit integer greyscale (``I;16*``, ``I``)
    is scaled from 0..65535 to 0..255; float greyscale (``F``) is read as 0..1 when all values fall
    in that range, otherwise as 0..255 (clipped); ``1``, ``L``, ``P``, ``CMYK`` and ``YCbCr`` use
    Pillow's conversions.

    Args:
        image: a loaded Pillow image of any mode.

    Raises:
        UnsupportedImageFormat: the pixel mode has no conversion to RGB.
    """
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "I":
        image = _integer_greyscale_to_l(image)
    elif image.mode == "F":
        image = _float_greyscale_to_l(image)
    elif image.mode == "La":  # premultiplied; Pillow only converts it to LA
        image = image.convert("LA")
    try:
        if image.mode in _ALPHA_MODES or "transparency" in image.info:
            return _flatten_on_background(image.convert("RGBA"))
        return image.convert("RGB")
    except ValueError as error:
        raise UnsupportedImageFormat(
            f"pixel mode {image.mode} cannot be converted to RGB ({error})"
        ) from error


def _integer_greyscale_to_l(image: Image.Image) -> Image.Image:
    """Scale 16-bit (or 16-bit-in-32-bit ``I``) greyscale to 8-bit instead of clipping at 255."""
    values = np.asarray(image).astype(np.float64)
    scaled = np.clip(values, 0, 65535) / _SIXTEEN_BIT_TO_EIGHT_BIT
    return Image.fromarray(np.rint(scaled).astype(np.uint8))


def _float_greyscale_to_l(image: Image.Image) -> Image.Image:
    """Map float greyscale to 8-bit: 0..1 data is stretched, anything else is clipped to 0..255."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    if values.size and values.min() >= 0.0 and values.max() <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.rint(np.clip(values, 0, 255)).astype(np.uint8))


def _flatten_on_background(rgba: Image.Image) -> Image.Image:
    """Alpha-composite an RGBA image over the fixed background colour and drop the alpha band."""
    background = Image.new("RGBA", rgba.size, (*BACKGROUND_COLOR, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")

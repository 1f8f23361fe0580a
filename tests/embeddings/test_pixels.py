"""to_rgb for pixel modes that the allowed file formats rarely or never produce directly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from embeddings import BACKGROUND_COLOR, UnsupportedImageFormat, to_rgb


def row(image: Image.Image) -> list[tuple[int, ...]]:
    rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    return [rgb.getpixel((x, 0)) for x in range(rgb.width)]  # type: ignore[misc]


def test_plain_rgb_is_returned_as_is() -> None:
    image = Image.new("RGB", (2, 2), (1, 2, 3))
    assert to_rgb(image) is image


def test_32_bit_integer_greyscale_is_scaled_from_16_bit_range() -> None:
    image = Image.fromarray(np.array([[0, 257 * 100, 65535, 70000, -5]], dtype=np.int32))
    assert image.mode == "I"
    assert [pixel[0] for pixel in row(image)] == [0, 100, 255, 255, 0]


def test_big_endian_16_bit_greyscale() -> None:
    image = Image.frombytes("I;16B", (2, 1), bytes([0x80, 0x00, 0xFF, 0xFF]))
    assert row(image) == [(128, 128, 128), (255, 255, 255)]


def test_float_unit_range_is_stretched() -> None:
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert image.mode == "F"
    assert [pixel[0] for pixel in row(image)] == [0, 128, 255]


def test_float_larger_range_is_clipped_and_nan_is_black() -> None:
    image = Image.fromarray(np.array([[0.0, 100.0, 300.0, np.nan]], dtype=np.float32))
    assert [pixel[0] for pixel in row(image)] == [0, 100, 255, 0]


@pytest.mark.parametrize("mode", ["RGBa", "La", "PA", "RGBA", "LA"])
def test_fully_transparent_pixels_become_the_background(mode: str) -> None:
    image = Image.new(mode, (1, 1))  # all zeros: fully transparent
    assert row(image) == [BACKGROUND_COLOR]


def test_rgb_with_transparent_colour_key() -> None:
    image = Image.new("RGB", (2, 1))
    image.putpixel((0, 0), (1, 2, 3))
    image.putpixel((1, 0), (9, 9, 9))
    image.info["transparency"] = (1, 2, 3)
    assert row(image) == [BACKGROUND_COLOR, (9, 9, 9)]


def test_ycbcr_and_cmyk_use_standard_conversions() -> None:
    ycbcr = Image.new("RGB", (1, 1), (10, 200, 30)).convert("YCbCr")
    assert np.abs(np.array(row(ycbcr)[0]) - (10, 200, 30)).max() <= 2
    assert row(Image.new("CMYK", (1, 1), (0, 255, 255, 0))) == [(255, 0, 0)]


def test_unconvertible_mode_is_unsupported() -> None:
    with pytest.raises(UnsupportedImageFormat, match="XYZ"):
        to_rgb(_FakeModeImage())


class _FakeModeImage(Image.Image):
    """An image reporting a mode Pillow cannot convert."""

    def __init__(self) -> None:
        super().__init__()
        self._mode = "XYZ"
        self._size = (1, 1)

    def convert(self, *args: object, **kwargs: object) -> Image.Image:  # type: ignore[override]
        raise ValueError("conversion from XYZ to RGB not supported")

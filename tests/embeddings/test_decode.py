"""decode_image: allow-list, pixel budget before decoding, wrapped errors, every pixel mode."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import GifImagePlugin, Image, ImageChops

from embeddings import (
    CorruptImage,
    EmptyImage,
    ImageTooLarge,
    InvalidImage,
    UnsupportedImageFormat,
    declared_pixels,
    decode_image,
    sniff_format,
    sniff_mime_type,
)
from tests.embeddings.images import encoded, png_header_only

WHITE = (255, 255, 255)


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


def quadrants(width: int = 32, height: int = 16) -> Image.Image:
    """An asymmetric RGB image of four solid 8-aligned blocks (survives JPEG almost exactly)."""
    image = Image.new("RGB", (width, height), (220, 20, 20))
    image.paste((20, 20, 220), (width // 2, 0, width, height // 2))
    image.paste((20, 200, 20), (0, height // 2, width // 2, height))
    image.paste((240, 240, 240), (width // 2, height // 2, width, height))
    return image


# --- formats and errors ------------------------------------------------------------------------


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP", "BMP", "GIF"])
def test_allowed_formats_decode_to_rgb(image_format: str) -> None:
    original = quadrants()
    options = {"quality": 95} if image_format in ("JPEG", "WEBP") else {}
    decoded = decode_image(encoded(original, image_format, **options))
    assert decoded.mode == "RGB" and decoded.size == original.size
    assert np.abs(pixels(decoded) - pixels(original)).mean() < 6


def test_lossless_png_round_trips_exactly() -> None:
    original = quadrants()
    assert np.array_equal(pixels(decode_image(encoded(original, "PNG"))), pixels(original))


def test_zero_bytes_is_empty_image() -> None:
    with pytest.raises(EmptyImage, match="empty"):
        decode_image(b"")


def test_random_bytes_are_corrupt_not_a_pillow_error() -> None:
    noise = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(CorruptImage, match="not a recognisable image"):
        decode_image(noise)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_truncated_file_is_corrupt(image_format: str) -> None:
    noisy = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encoded(Image.fromarray(noisy), image_format)
    with pytest.raises(CorruptImage, match="corrupt or truncated") as raised:
        decode_image(data[: len(data) // 2])
    assert not isinstance(raised.value, OSError)


def test_truncated_png_header_is_corrupt() -> None:
    data = encoded(quadrants(), "PNG")
    with pytest.raises(CorruptImage):
        decode_image(data[:20])


@pytest.mark.parametrize(("image_format", "name"), [("TIFF", "TIFF"), ("ICO", "ICO")])
def test_formats_outside_the_allow_list_are_unsupported(image_format: str, name: str) -> None:
    data = encoded(quadrants(), image_format)
    with pytest.raises(UnsupportedImageFormat, match=name) as raised:
        decode_image(data)
    assert "allowed formats" in raised.value.message


def test_every_error_is_an_invalid_image_value_error() -> None:
    for bad in (b"", b"\x00" * 10, encoded(quadrants(), "TIFF"), png_header_only(9000, 9000)):
        with pytest.raises(InvalidImage) as raised:
            decode_image(bad)
        assert isinstance(raised.value, ValueError) and raised.value.message


# --- decompression bombs -----------------------------------------------------------------------


def test_header_claiming_50000_squared_pixels_is_too_large() -> None:
    bomb = png_header_only(50_000, 50_000)
    assert len(bomb) < 100
    with pytest.raises(ImageTooLarge):
        decode_image(bomb)


def test_pixel_limit_is_checked_from_the_header_before_decoding() -> None:
    # 64 megapixels: below Pillow's own bomb threshold, above winnow's default of 40.
    # The file has no pixel data at all, so reaching the decoder would raise CorruptImage.
    with pytest.raises(ImageTooLarge, match="8000x8000"):
        decode_image(png_header_only(8000, 8000))


def test_max_pixels_argument_applies() -> None:
    data = encoded(quadrants(100, 50), "PNG")
    assert decode_image(data, max_pixels=5000).size == (100, 50)
    with pytest.raises(ImageTooLarge):
        decode_image(data, max_pixels=4999)


def test_declared_pixels_reads_the_header_without_decoding() -> None:
    # No pixel data at all: decoding would raise CorruptImage, the header alone gives the size.
    assert declared_pixels(png_header_only(3000, 2000)) == 6_000_000
    with pytest.raises(CorruptImage):
        decode_image(png_header_only(3000, 2000))
    assert declared_pixels(encoded(quadrants(100, 50), "GIF")) == 5000


def test_declared_pixels_refuses_what_decode_image_refuses_before_decoding() -> None:
    with pytest.raises(ImageTooLarge, match="8000x8000"):
        declared_pixels(png_header_only(8000, 8000))
    with pytest.raises(ImageTooLarge):
        declared_pixels(encoded(quadrants(100, 50), "PNG"), max_pixels=4999)
    with pytest.raises(EmptyImage):
        declared_pixels(b"")
    with pytest.raises(UnsupportedImageFormat):
        declared_pixels(encoded(quadrants(), "TIFF"))
    with pytest.raises(CorruptImage):
        declared_pixels(b"\x00" * 10)


def test_pillow_globals_are_left_alone() -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageTooLarge):
        decode_image(png_header_only(8000, 8000))
    decode_image(encoded(quadrants(), "PNG"))
    assert before == Image.MAX_IMAGE_PIXELS


# --- animation, orientation ----------------------------------------------------------------------


def test_gif_with_2000_frames_decodes_first_frame_without_seeking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = Image.new("RGB", (8, 8), (10, 180, 40))
    # consecutive frames differ in colour, so Pillow cannot merge them
    frames = [Image.new("RGB", (8, 8), (index % 2 * 200, 0, 200)) for index in range(1999)]
    buffer = io.BytesIO()
    first.save(buffer, format="GIF", save_all=True, append_images=frames, duration=10)
    data = buffer.getvalue()
    assert Image.open(io.BytesIO(data)).n_frames == 2000

    def no_frame_iteration(self: GifImagePlugin.GifImageFile, frame: int) -> None:
        raise AssertionError(f"decode_image seeked to frame {frame}")

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "seek", no_frame_iteration)
    monkeypatch.setattr(GifImagePlugin.GifImageFile, "n_frames", property(no_frame_iteration))
    decoded = decode_image(data)
    assert decoded.size == (8, 8)
    assert decoded.getpixel((3, 3)) == (10, 180, 40)


def test_exif_rotated_jpeg_equals_the_pre_rotated_image() -> None:
    original = quadrants(32, 16)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; display rotated 90 degrees clockwise
    tagged = encoded(original, "JPEG", quality=95, exif=exif.tobytes())
    upright = original.transpose(Image.Transpose.ROTATE_270)
    pre_rotated = encoded(upright, "JPEG", quality=95)

    decoded = decode_image(tagged)
    assert decoded.size == (16, 32)
    difference = np.abs(pixels(decoded) - pixels(decode_image(pre_rotated)))
    assert difference.mean() < 3
    assert np.abs(pixels(decoded) - pixels(upright)).mean() < 6


# --- pixel modes -------------------------------------------------------------------------------


def test_rgba_is_composited_on_white() -> None:
    image = Image.new("RGBA", (3, 1))
    image.putdata([(255, 0, 0, 0), (0, 0, 255, 255), (0, 0, 0, 128)])
    for image_format in ("PNG", "WEBP"):
        options = {"lossless": True, "exact": True} if image_format == "WEBP" else {}
        decoded = decode_image(encoded(image, image_format, **options))
        assert decoded.getpixel((0, 0)) == WHITE, image_format
        assert decoded.getpixel((1, 0)) == (0, 0, 255), image_format
        assert all(abs(channel - 127) <= 1 for channel in decoded.getpixel((2, 0))), image_format


def test_la_is_composited_on_white() -> None:
    image = Image.new("LA", (2, 1))
    image.putdata([(0, 0), (40, 255)])
    decoded = decode_image(encoded(image, "PNG"))
    assert decoded.getpixel((0, 0)) == WHITE
    assert decoded.getpixel((1, 0)) == (40, 40, 40)


@pytest.mark.parametrize("image_format", ["PNG", "GIF"])
def test_palette_transparency_is_white(image_format: str) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 200, 30, 30] + [0, 0, 0] * 254)
    image.putdata([0, 1])
    decoded = decode_image(encoded(image, image_format, transparency=0))
    assert decoded.getpixel((0, 0)) == WHITE
    assert decoded.getpixel((1, 0)) == (200, 30, 30)


@pytest.mark.parametrize("image_format", ["PNG", "GIF", "BMP"])
def test_palette_without_transparency_keeps_colours(image_format: str) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 200, 30, 30] + [0, 0, 0] * 254)
    image.putdata([0, 1])
    decoded = decode_image(encoded(image, image_format))
    assert decoded.getpixel((0, 0)) == (0, 0, 0)
    assert decoded.getpixel((1, 0)) == (200, 30, 30)


def test_sixteen_bit_png_is_scaled_not_clipped_to_white() -> None:
    values = np.array([[0, 257 * 64, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    decoded = decode_image(encoded(image, "PNG"))
    assert [decoded.getpixel((x, 0))[0] for x in range(4)] == [0, 64, 128, 255]
    assert len(set(decoded.getpixel((2, 0)))) == 1  # grey stays grey


@pytest.mark.parametrize("image_format", ["PNG", "BMP"])
def test_one_bit_images(image_format: str) -> None:
    image = Image.new("1", (2, 1))
    image.putdata([0, 255])
    decoded = decode_image(encoded(image, image_format))
    assert decoded.getpixel((0, 0)) == (0, 0, 0) and decoded.getpixel((1, 0)) == WHITE


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_greyscale(image_format: str) -> None:
    decoded = decode_image(encoded(Image.new("L", (16, 16), 90), image_format))
    assert all(abs(channel - 90) <= 1 for channel in decoded.getpixel((5, 5)))


def test_adobe_cmyk_jpeg() -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red ink, no black
    source = Image.open(io.BytesIO(encoded(cmyk, "JPEG", quality=95)))
    assert source.mode == "CMYK" and "adobe" in source.info
    decoded = decode_image(encoded(cmyk, "JPEG", quality=95))
    assert np.abs(np.array(decoded.getpixel((8, 8))) - (255, 0, 0)).max() <= 3


def test_plain_cmyk_jpeg_without_adobe_marker_is_not_inverted() -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))
    # Pillow writes Adobe-inverted samples; saving the inverse stores the plain values ...
    data = encoded(ImageChops.invert(cmyk), "JPEG", quality=95)
    marker = data.index(b"\xff\xee")  # ... and dropping the APP14 segment makes it plain CMYK.
    length = int.from_bytes(data[marker + 2 : marker + 4], "big")
    plain = data[:marker] + data[marker + 2 + length :]
    assert "adobe" not in Image.open(io.BytesIO(plain)).info
    decoded = decode_image(plain)
    assert np.abs(np.array(decoded.getpixel((8, 8))) - (255, 0, 0)).max() <= 3


def test_ycbcr_jpeg() -> None:
    ycbcr = Image.new("RGB", (16, 16), (10, 200, 30)).convert("YCbCr")
    decoded = decode_image(encoded(ycbcr, "JPEG", quality=95))
    assert np.abs(np.array(decoded.getpixel((8, 8))) - (10, 200, 30)).max() <= 4


# --- sniffing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_format", "mime"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_sniff_mime_type(image_format: str, mime: str) -> None:
    data = encoded(quadrants(), image_format)
    assert sniff_format(data) == image_format
    assert sniff_mime_type(data) == mime


def test_sniff_unknown() -> None:
    assert sniff_format(b"hello world") is None
    assert sniff_mime_type(b"hello world") == "application/octet-stream"

"""Augmented views: deterministic per seed, the input's size and mode, mild enough to stay true."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from embeddings.augment import MAX_VIEWS, augmented_views


def _photo(mode: str = "RGB", size: tuple[int, int] = (48, 32)) -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, mode="RGB").convert(mode)


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))


def test_views_keep_size_and_mode_and_differ_from_the_original() -> None:
    image = _photo()
    views = augmented_views(image, 4, seed=1)

    assert len(views) == 4
    assert all(view.size == image.size and view.mode == "RGB" for view in views)
    assert not any(_same(view, image) for view in views)
    assert not _same(views[0], views[1])


def test_same_seed_same_views_and_fewer_views_are_a_prefix() -> None:
    image = _photo()
    four = augmented_views(image, 4, seed=123)

    assert all(map(_same, four, augmented_views(image, 4, seed=123)))
    assert all(map(_same, four[:2], augmented_views(image, 2, seed=123)))
    assert not all(map(_same, four, augmented_views(image, 4, seed=124)))


def test_the_input_is_left_alone() -> None:
    image = _photo()
    before = np.asarray(image).copy()
    augmented_views(image, 3, seed=5)
    assert np.array_equal(np.asarray(image), before)


def test_greyscale_stays_greyscale_and_other_modes_become_rgb() -> None:
    assert {view.mode for view in augmented_views(_photo("L"), 3, seed=2)} == {"L"}
    assert {view.mode for view in augmented_views(_photo("RGBA"), 3, seed=2)} == {"RGB"}


def test_views_stay_close_to_the_image() -> None:
    # a smooth image: a mild crop, maybe mirrored, and light jitter keep its mean brightness near
    ramp = np.tile(np.linspace(60, 200, 64, dtype=np.float32), (64, 1)).astype(np.uint8)
    image = Image.fromarray(ramp, mode="L")
    for view in augmented_views(image, MAX_VIEWS, seed=9):
        assert abs(float(np.asarray(view).mean()) - float(ramp.mean())) < 40


def test_zero_views_and_bad_arguments() -> None:
    assert augmented_views(_photo(), 0, seed=0) == []
    with pytest.raises(ValueError, match="between 0 and"):
        augmented_views(_photo(), MAX_VIEWS + 1, seed=0)
    with pytest.raises(ValueError, match="between 0 and"):
        augmented_views(_photo(), -1, seed=0)
    with pytest.raises(ValueError, match="non-negative"):
        augmented_views(_photo(), 1, seed=-1)

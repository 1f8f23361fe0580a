"""Augmented views of a labelled image: mirror, mild random resized crop, light colour jitter.

A few plausible variants of each labelled image give a few-shot head more than one point per
image to fit. The operations are torchvision's ``transforms.v2`` functional ones; their random
parameters come from a NumPy generator seeded by the caller (e.g. from the image's digest), not
from torch's global RNG, so the same image and seed always give the same views, whichever thread
asks and whatever else uses torch's RNG meanwhile.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from torchvision.transforms.v2 import functional as F

CROP_SCALE = (0.6, 1.0)
"""Share of the image area a crop keeps: mild, so the object stays in view."""

CROP_RATIO = (3 / 4, 4 / 3)
"""Aspect ratios a crop may have (torchvision's default), resized back to the input's size."""

JITTER = {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.02}
"""Largest relative change of each colour property (hue in turns): light, so labels stay true."""

MAX_VIEWS = 8
"""Most views one call makes (the per-function policy allows 0..8)."""


def augmented_views(image: Image.Image, k: int, *, seed: int) -> list[Image.Image]:
    """``k`` augmented views of ``image``, each the input's size and mode (RGB for colour jitter).

    Each view is mirrored with probability 1/2, cropped to a random box covering
    :data:`CROP_SCALE` of the area and resized back, then jittered (:data:`JITTER`). Views are
    drawn in order from one generator, so the first ``j`` views of ``k`` are the views of ``j``.

    Args:
        image: the labelled image (converted to RGB if it is not RGB or L).
        k: number of views, 0 to :data:`MAX_VIEWS`.
        seed: seed of the views' random parameters (any non-negative integer).

    Raises:
        ValueError: ``k`` outside 0..MAX_VIEWS, or a negative seed.
    """
    if not 0 <= k <= MAX_VIEWS:
        raise ValueError(f"k must be between 0 and {MAX_VIEWS}, got {k}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    source = image if image.mode in ("RGB", "L") else image.convert("RGB")
    rng = np.random.default_rng(seed)
    return [_one_view(source, rng) for _ in range(k)]


def _one_view(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    width, height = image.size
    view = F.horizontal_flip(image) if rng.random() < 0.5 else image
    top, left, crop_height, crop_width = _crop_box(width, height, rng)
    view = F.resized_crop(
        view, top, left, crop_height, crop_width, size=[height, width], antialias=True
    )
    view = F.adjust_brightness(view, _factor(rng, JITTER["brightness"]))
    view = F.adjust_contrast(view, _factor(rng, JITTER["contrast"]))
    if view.mode == "RGB":  # saturation and hue mean nothing on grey
        view = F.adjust_saturation(view, _factor(rng, JITTER["saturation"]))
        view = F.adjust_hue(view, float(rng.uniform(-JITTER["hue"], JITTER["hue"])))
    return view


def _factor(rng: np.random.Generator, strength: float) -> float:
    return float(rng.uniform(1.0 - strength, 1.0 + strength))


def _crop_box(width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of a random crop, as ``RandomResizedCrop`` samples it:
    area share in :data:`CROP_SCALE`, log-uniform aspect ratio, ten tries, else the whole image."""
    area = width * height
    log_ratio = (math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    for _ in range(10):
        target = area * rng.uniform(*CROP_SCALE)
        ratio = math.exp(rng.uniform(*log_ratio))
        crop_width = round(math.sqrt(target * ratio))
        crop_height = round(math.sqrt(target / ratio))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            top = int(rng.integers(0, height - crop_height + 1))
            left = int(rng.integers(0, width - crop_width + 1))
            return top, left, crop_height, crop_width
    return 0, 0, height, width

"""Fashion-MNIST test images from Debian's ``dataset-fashion-mnist`` package (nothing downloaded)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bench.data import DATA_DIR, read_idx

# Short names of the ten classes, in label order.
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat"]
CLASSES += ["sandal", "shirt", "sneaker", "bag", "boot"]


def fashion_test_split() -> tuple[np.ndarray, np.ndarray]:
    """The t10k images (10000 x 28 x 28 uint8) and labels; skips the test where it is absent."""
    images_path = DATA_DIR / "t10k-images-idx3-ubyte.gz"
    labels_path = DATA_DIR / "t10k-labels-idx1-ubyte.gz"
    if not images_path.exists() or not labels_path.exists():
        pytest.skip(f"Fashion-MNIST not found in {DATA_DIR} (Debian package dataset-fashion-mnist)")
    return read_idx(images_path), read_idx(labels_path)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()

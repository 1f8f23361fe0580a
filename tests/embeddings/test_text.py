"""Text embeddings through the encoders the service uses (zero-shot heads, text capture rules)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from embeddings import (
    Backbone,
    BatchingEncoder,
    EncoderClosed,
    TextNotSupported,
    backbone_has_text_tower,
    encode_text_or_raise,
)


class NoTextBackbone:
    """tiny-clip's image tower only: what a backbone without a text tower looks like."""

    has_text_tower = False

    def __init__(self, inner: Backbone) -> None:
        self.inner = inner

    spec = property(lambda self: "no-text")
    dim = property(lambda self: self.inner.dim)
    device = property(lambda self: self.inner.device)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.inner.preprocess(image)

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        return self.inner.encode(batch)

    def encode_text(self, prompts: list[str]) -> np.ndarray | None:
        return None


def test_clip_text_matches_the_backbone_and_lives_in_the_image_space(
    tiny_backbone: Backbone,
) -> None:
    prompts = ["a photo of a cat", "a photo of a dog", "itap of a bird."]
    assert backbone_has_text_tower(tiny_backbone)
    with BatchingEncoder(tiny_backbone, torch_threads=None) as encoder:
        assert encoder.has_text_tower
        vectors = encoder.encode_text(prompts)
        images = encoder.encode([Image.new("RGB", (32, 32), (200, 20, 20))])
    assert vectors.shape == (3, tiny_backbone.dim) == (3, images.shape[1])
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, encode_text_or_raise(tiny_backbone, prompts), atol=1e-6)
    assert not np.allclose(vectors[0], vectors[1])


def test_text_runs_beside_image_batches_from_many_threads(tiny_backbone: Backbone) -> None:
    expected = encode_text_or_raise(tiny_backbone, ["a red thing"])
    results: list[np.ndarray] = []
    with BatchingEncoder(tiny_backbone, torch_threads=None) as encoder:
        threads = [
            threading.Thread(target=lambda: results.append(encoder.encode_text(["a red thing"])))
            for _ in range(4)
        ]
        threads += [
            threading.Thread(target=encoder.encode, args=([Image.new("RGB", (40, 40))] * 5,))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert len(results) == 4
    for vectors in results:
        np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_a_backbone_without_text_tower_says_so(tiny_backbone: Backbone) -> None:
    backbone = NoTextBackbone(tiny_backbone)
    assert not backbone_has_text_tower(backbone)
    with pytest.raises(TextNotSupported, match="no-text has no text tower"):
        encode_text_or_raise(backbone, ["a cat"])
    encoder = BatchingEncoder(backbone, torch_threads=None)
    assert not encoder.has_text_tower
    with pytest.raises(TextNotSupported):
        encoder.encode_text(["a cat"])
    encoder.close()
    with pytest.raises(EncoderClosed):
        encoder.encode_text(["a cat"])

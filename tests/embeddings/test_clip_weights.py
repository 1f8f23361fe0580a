"""The default CLIP backbone with real weights, only when they are already in the local cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from embeddings import DEFAULT_CLIP_SPEC, cached_clip_weights, load_backbone

pytestmark = [
    pytest.mark.clip_weights,
    pytest.mark.skipif(
        cached_clip_weights("ViT-B-32", "laion2b_s34b_b79k") is None,
        reason="ViT-B-32 laion2b_s34b_b79k weights are not in the local Hugging Face cache",
    ),
]


def test_default_clip_zero_shot_on_sample_images() -> None:
    from sklearn.datasets import load_sample_image

    backbone = load_backbone(DEFAULT_CLIP_SPEC, device="cpu")
    assert backbone.spec == DEFAULT_CLIP_SPEC and backbone.dim == 512
    pictures = [Image.fromarray(load_sample_image(n)) for n in ("china.jpg", "flower.jpg")]
    images = backbone.encode(torch.stack([backbone.preprocess(p) for p in pictures]))
    prompts = backbone.encode_text(["a photo of a temple", "a photo of a flower"])
    assert prompts is not None
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    assert (images @ prompts.T).argmax(axis=1).tolist() == [0, 1]

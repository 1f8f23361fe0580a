"""Real zero-shot accuracy of version 0 with the default CLIP weights, when they are cached.

Published for open_clip ViT-B-32 laion2b_s34b_b79k: ImageNet 66.6, CIFAR-10 93.6 top-1. Here the
service's own recipe (prompt ensemble, :class:`learner.ZeroShotHead`) must classify scikit-learn's
sample photos and Fashion-MNIST test images by class name alone, far above chance (10%).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from embeddings import DEFAULT_CLIP_SPEC, cached_clip_weights, load_backbone
from learner import LabelText, build_zero_shot_head

pytestmark = [
    pytest.mark.clip_weights,
    pytest.mark.skipif(
        cached_clip_weights("ViT-B-32", "laion2b_s34b_b79k") is None,
        reason="ViT-B-32 laion2b_s34b_b79k weights are not in the local Hugging Face cache",
    ),
]

FASHION_NAMES = ["t-shirt", "trousers", "pullover", "dress", "coat"]
FASHION_NAMES += ["sandal", "shirt", "sneaker", "bag", "ankle boot"]


@pytest.fixture(scope="module")
def backbone():  # type: ignore[no-untyped-def]
    return load_backbone(DEFAULT_CLIP_SPEC, device="cpu")


def _encode(backbone, pictures: list[Image.Image]) -> np.ndarray:  # type: ignore[no-untyped-def]
    return backbone.encode(torch.stack([backbone.preprocess(p) for p in pictures]))


def test_sample_photos_by_label_name(backbone) -> None:  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_sample_image

    pictures = [Image.fromarray(load_sample_image(n)) for n in ("china.jpg", "flower.jpg")]
    labels = [LabelText("temple"), LabelText("flower"), LabelText("car"), LabelText("dog")]
    head = build_zero_shot_head(backbone.encode_text, labels, backbone=backbone.spec)
    assert list(head.predict(_encode(backbone, pictures))) == ["temple", "flower"]


def test_fashion_mnist_by_class_name(backbone) -> None:  # type: ignore[no-untyped-def]
    from tests.fashion import fashion_test_split

    images, targets = fashion_test_split()
    picked = np.random.default_rng(0).choice(len(targets), size=500, replace=False)
    pictures = [Image.fromarray(images[i]).convert("RGB") for i in picked]
    labels = [LabelText(name) for name in FASHION_NAMES]
    head = build_zero_shot_head(backbone.encode_text, labels, backbone=backbone.spec)
    predicted = head.predict(_encode(backbone, pictures))
    accuracy = float(np.mean(predicted == np.asarray(FASHION_NAMES, dtype=object)[targets[picked]]))
    print(f"zero-shot Fashion-MNIST accuracy {accuracy:.3f} on 500 test images")
    assert accuracy >= 0.5, accuracy

"""The offline EfficientNet-Lite0 backbone really carries ImageNet weights (slow: real images)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from embeddings import EfficientNetLite0Backbone, build_efficientnet_lite0
from embeddings.backbone import frozen_graph

pytestmark = pytest.mark.slow

# ImageNet-1k class indices
PALACE, MONASTERY, BELL_COTE, STUPA, DAISY = 698, 663, 442, 832, 985


def sample_image(name: str) -> Image.Image:
    from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image(name))


@pytest.fixture(scope="module")
def backbone() -> EfficientNetLite0Backbone:
    return EfficientNetLite0Backbone(torch.device("cpu"))


def test_backbone_contract(backbone: EfficientNetLite0Backbone) -> None:
    assert backbone.spec == "efficientnet-lite0" and backbone.dim == 1280
    tensor = backbone.preprocess(Image.new("RGB", (300, 200), (255, 255, 255)))
    assert tensor.shape == (3, 224, 224)
    assert torch.allclose(tensor, torch.full_like(tensor, 127.5 / 128))  # (255 - 127.5) / 128
    vectors = backbone.encode(torch.stack([tensor, -tensor]))
    assert vectors.shape == (2, 1280) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert backbone.encode_text(["a photo"]) is None and not backbone.has_text_tower


def test_packaged_weights_classify_the_sample_images(backbone: EfficientNetLite0Backbone) -> None:
    classifier = build_efficientnet_lite0(with_classifier=True)
    batch = torch.stack([backbone.preprocess(sample_image(n)) for n in ("china.jpg", "flower.jpg")])
    with torch.inference_mode():
        probabilities = classifier(batch).softmax(dim=-1)
    top5 = probabilities.topk(5).indices.tolist()
    assert {PALACE, MONASTERY, BELL_COTE, STUPA} & set(top5[0][:2]), top5[0]
    assert top5[1][0] == DAISY, top5[1]
    assert probabilities.max(dim=-1).values.min() > 0.2  # confident, unlike random weights


def test_features_separate_two_real_image_groups(backbone: EfficientNetLite0Backbone) -> None:
    crops, groups = [], []
    for group, name in enumerate(("china.jpg", "flower.jpg")):
        image = sample_image(name)
        width, height = image.size
        for row in range(2):
            for column in range(3):
                box = (
                    column * width // 3,
                    row * height // 2,
                    (column + 1) * width // 3,
                    (row + 1) * height // 2,
                )
                crops.append(image.crop(box))
                groups.append(group)
    labels = np.array(groups)
    vectors = backbone.encode(torch.stack([backbone.preprocess(crop) for crop in crops]))
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = similarity.argmax(axis=1)
    assert (labels[nearest] == labels).all()  # random weights get about 0.8 here
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(similarity, np.nan)
    assert np.nanmean(similarity[same]) - np.nanmean(similarity[~same]) > 0.2


def test_frozen_graph_gives_eager_features_for_any_batch_size(
    recwarn: pytest.WarningsRecorder,
) -> None:
    eager = build_efficientnet_lite0()
    frozen = frozen_graph(eager, torch.zeros(1, 3, 224, 224))  # traced on one image
    assert not [w for w in recwarn if "jit" in str(w.message)]  # its deprecation notes are muted
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for size in (1, 3, 8):
            batch = torch.randn(size, 3, 224, 224, generator=generator)
            expected, got = eager(batch), frozen(batch)
            assert got.shape == (size, 1280)
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)

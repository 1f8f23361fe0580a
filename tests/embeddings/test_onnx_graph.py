"""The backbone's image tower as an ONNX graph from uint8 pixels, and the recipe of those pixels."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2 as transforms

from bench.onnx_export import snippet
from embeddings import load_backbone
from embeddings.onnx_graph import PixelRecipe, module_to_onnx, pixel_graph, recipe_from_transform
from embeddings.precision import probe_images


def snippet_pixels(image: Image.Image, recipe: PixelRecipe) -> np.ndarray:
    return np.asarray(snippet().pixels(image, recipe.describe()))


def images() -> list[Image.Image]:
    """Square and oblong, landscape and portrait, larger and smaller than the crop."""
    rng = np.random.default_rng(0)
    shapes = [(300, 300), (120, 333), (333, 120), (17, 40)]
    return probe_images(2, size=256) + [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in shapes
    ]


@pytest.mark.parametrize(
    "spec", ["tiny-clip", pytest.param("efficientnet-lite0", marks=pytest.mark.slow)]
)
def test_the_graph_gives_the_backbones_vectors(spec: str) -> None:
    backbone = load_backbone(spec, device="cpu")
    graph, recipe = pixel_graph(backbone)
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    pictures = images()
    expected = backbone.encode(torch.stack([backbone.preprocess(p) for p in pictures]))
    pixels = np.stack([snippet_pixels(p, recipe) for p in pictures])
    got = session.run(["features"], {"pixels": pixels})[0]
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-4
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_recipe_of_an_evaluation_transform() -> None:
    transform = transforms.Compose(
        [
            transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToImage(),
            transforms.ToDtype(torch.float32, scale=True),
            transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25]),
        ]
    )
    recipe = recipe_from_transform(transform)
    assert recipe == PixelRecipe(224, 224, "bicubic", (127.5,) * 3, (63.75,) * 3)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([transforms.Resize((224, 200)), transforms.CenterCrop(224)], "fixed shape"),
        ([transforms.Resize(256), transforms.CenterCrop((224, 200))], "non-square crop"),
        ([transforms.Resize(256), transforms.RandomHorizontalFlip()], "RandomHorizontalFlip"),
        ([transforms.CenterCrop(224)], "needs a resize"),
    ],
)
def test_recipes_it_cannot_write_are_refused(steps: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        recipe_from_transform(transforms.Compose(steps))


def test_export_needs_a_batch_of_two() -> None:
    with pytest.raises(ValueError, match="at least two rows"):
        module_to_onnx(torch.nn.Identity(), torch.zeros(1, 3))

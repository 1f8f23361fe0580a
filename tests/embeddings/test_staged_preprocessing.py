"""A backbone's preprocessing splits into a pixel stage and a tensor stage that give the same tensor.

The Ray encoder runs the pixel stage in the API replica and the tensor stage on the encoder
replica, with the pixels in between as a (read-only) numpy array after pickling.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from embeddings import Backbone, EfficientNetLite0Backbone
from embeddings.backbone import StagedPreprocessing, split_at_tensor_conversion


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    shapes = [(300, 200), (32, 32), (17, 90), (480, 640)]
    return [Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)) for shape in shapes]


def _assert_stages_reproduce_preprocess(backbone: Backbone) -> None:
    assert isinstance(backbone, StagedPreprocessing) and backbone.pixel_stage is not None
    pixel_stage = pickle.loads(pickle.dumps(backbone.pixel_stage))  # as it travels to a caller
    for image in _images():
        pixels = np.asarray(pixel_stage(image))
        assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
        pixels = pickle.loads(pickle.dumps(pixels))  # as it travels back
        assert torch.equal(backbone.tensor_stage(pixels), backbone.preprocess(image))


def test_tiny_clip_stages_reproduce_preprocess(tiny_backbone: Backbone) -> None:
    _assert_stages_reproduce_preprocess(tiny_backbone)


@pytest.mark.slow
def test_efficientnet_stages_reproduce_preprocess() -> None:
    _assert_stages_reproduce_preprocess(EfficientNetLite0Backbone(torch.device("cpu")))


def test_split_needs_a_tensor_conversion_after_pixel_steps() -> None:
    resize, to_tensor = transforms.Resize(8), transforms.ToTensor()
    split = split_at_tensor_conversion(transforms.Compose([resize, to_tensor]))
    assert split is not None
    assert split[0].transforms == [resize] and split[1].transforms == [to_tensor]
    assert split_at_tensor_conversion(transforms.Compose([to_tensor])) is None
    assert split_at_tensor_conversion(transforms.Compose([transforms.PILToTensor()])) is None
    assert split_at_tensor_conversion(lambda image: image) is None

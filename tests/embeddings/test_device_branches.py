"""What changes on a GPU, checked on the CPU: batch size, preprocessing threads, thread tuner."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from embeddings import Backbone, BatchingEncoder, EncoderPool


class ClaimsCuda:
    """A CPU backbone that says it runs on CUDA and records which threads preprocess."""

    def __init__(self, inner: Backbone) -> None:
        self.inner = inner
        self.preprocessed_on: set[str] = set()

    spec = property(lambda self: self.inner.spec)
    dim = property(lambda self: self.inner.dim)
    device = property(lambda self: torch.device("cuda"))

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        self.preprocessed_on.add(threading.current_thread().name)
        return self.inner.preprocess(image)

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        return self.inner.encode(batch)

    def encode_text(self, prompts: list[str]) -> np.ndarray | None:
        return None


def coloured(count: int) -> list[Image.Image]:
    return [Image.new("RGB", (40, 30), (20 * i, 255 - 20 * i, 90)) for i in range(count)]


def test_on_a_gpu_requests_of_several_images_are_preprocessed_in_parallel_in_order(
    tiny_backbone: Backbone,
) -> None:
    backbone = ClaimsCuda(tiny_backbone)
    images = coloured(12)
    with BatchingEncoder(backbone, max_batch=64) as encoder:  # type: ignore[arg-type]
        vectors = encoder.encode(images)
        assert encoder.torch_threads is None and encoder.tuned_threads(12) is None  # no tuner
    assert any(name.startswith("winnow-preprocess") for name in backbone.preprocessed_on)
    expected = tiny_backbone.encode(torch.stack([tiny_backbone.preprocess(i) for i in images]))
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_on_cpu_the_caller_preprocesses_its_own_images(tiny_backbone: Backbone) -> None:
    backbone = ClaimsCuda(tiny_backbone)
    with BatchingEncoder(backbone, preprocess_threads=0) as encoder:  # type: ignore[arg-type]
        encoder.encode(coloured(3))
    assert backbone.preprocessed_on == {threading.current_thread().name}
    with BatchingEncoder(tiny_backbone) as encoder:  # a CPU backbone: no preprocessing threads
        assert encoder._preprocessors is None


def test_auto_batch_size_and_precision_reach_the_encoder_and_backbone() -> None:
    with EncoderPool("tiny-clip", device="cpu", max_batch=None, precision="fp32") as pool:
        encoder = pool.get("")
        assert encoder.max_batch == 8  # the CPU's batch size
        assert encoder.backbone.precision.precision == "fp32"  # type: ignore[attr-defined]
    with EncoderPool("tiny-clip", device="cpu", max_batch=3, precision="bf16") as pool:
        encoder = pool.get("")
        assert encoder.max_batch == 3
        assert encoder.backbone.precision.precision == "bf16"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="precision must be one of"):
        EncoderPool("tiny-clip", precision="fp8")

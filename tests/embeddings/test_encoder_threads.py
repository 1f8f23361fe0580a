"""The encoder worker's torch thread count: one core is left to the request threads on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from embeddings import Backbone, BatchingEncoder
from embeddings import encoder as encoder_module
from embeddings.encoder import default_torch_threads


class ThreadCountingBackbone:
    """Wraps a backbone and records torch's intra-op thread count inside each ``encode``."""

    def __init__(self, inner: Backbone) -> None:
        self.inner = inner
        self.seen: list[int] = []

    spec = property(lambda self: self.inner.spec)
    dim = property(lambda self: self.inner.dim)
    device = property(lambda self: self.inner.device)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.inner.preprocess(image)

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        self.seen.append(torch.get_num_threads())
        return self.inner.encode(batch)

    def encode_text(self, prompts: list[str]) -> np.ndarray | None:
        return None


def one_image() -> list[Image.Image]:
    return [Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8))]


def test_default_leaves_one_core_on_cpu_and_nothing_on_accelerators(
    tiny_backbone: Backbone,
) -> None:
    cpu_threads = default_torch_threads(torch.device("cpu"))
    assert cpu_threads == max(1, encoder_module._PROCESS_TORCH_THREADS - 1)
    assert default_torch_threads(torch.device("cuda")) is None
    # Stable however many encoders ran before (each changes the default of later threads).
    for _ in range(2):
        with BatchingEncoder(tiny_backbone) as encoder:
            encoder.encode(one_image())
    assert default_torch_threads(torch.device("cpu")) == cpu_threads


@pytest.mark.parametrize("requested", [-1, 1, None])
def test_worker_uses_its_thread_count_without_changing_the_callers(
    tiny_backbone: Backbone, requested: int | None
) -> None:
    callers_threads = torch.get_num_threads()
    backbone = ThreadCountingBackbone(tiny_backbone)
    with BatchingEncoder(backbone, torch_threads=requested) as encoder:
        assert encoder.encode(one_image()).shape == (1, tiny_backbone.dim)
    expected = {-1: default_torch_threads(tiny_backbone.device), 1: 1}.get(requested)
    if expected is not None:
        assert backbone.seen == [expected]
    assert torch.get_num_threads() == callers_threads


def test_invalid_thread_count_is_refused(tiny_backbone: Backbone) -> None:
    with pytest.raises(ValueError, match="torch_threads"):
        BatchingEncoder(tiny_backbone, torch_threads=0)

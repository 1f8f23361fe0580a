"""The encoder worker's torch thread count: fixed, left alone, or tuned per batch on CPU."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from embeddings import Backbone, BatchingEncoder
from embeddings import encoder as encoder_module
from embeddings import threads as threads_module
from embeddings.threads import thread_choices


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


def test_choices_are_all_cores_and_all_but_one_on_cpu_and_none_on_accelerators(
    tiny_backbone: Backbone,
) -> None:
    cores = threads_module.PROCESS_TORCH_THREADS
    assert thread_choices(torch.device("cpu")) == sorted({max(1, cores - 1), cores})
    assert thread_choices(torch.device("cuda")) is None
    # Stable however many encoders ran before (each changes the default of later threads).
    for _ in range(2):
        with BatchingEncoder(tiny_backbone) as encoder:
            encoder.encode(one_image())
    assert thread_choices(torch.device("cpu")) == sorted({max(1, cores - 1), cores})


@pytest.mark.parametrize("requested", [1, None])
def test_a_fixed_or_untouched_count_is_used_without_changing_the_callers(
    tiny_backbone: Backbone, requested: int | None
) -> None:
    callers_threads = torch.get_num_threads()
    backbone = ThreadCountingBackbone(tiny_backbone)
    with BatchingEncoder(backbone, torch_threads=requested) as encoder:
        assert encoder.encode(one_image()).shape == (1, tiny_backbone.dim)
        assert encoder.torch_threads == requested and encoder.tuned_threads(1) is None
    if requested is not None:
        assert backbone.seen == [requested]
    assert torch.get_num_threads() == callers_threads


class ContendedBackbone(ThreadCountingBackbone):
    """Two threads are slow here (as when other work holds a core): each batch takes 30 ms
    with two torch threads and 1 ms with one."""

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        vectors = super().encode(batch)
        time.sleep(0.03 if torch.get_num_threads() == 2 else 0.001)
        return vectors


def test_automatic_count_tries_every_choice_then_keeps_the_faster(
    tiny_backbone: Backbone, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encoder_module, "thread_choices", lambda device: [1, 2])
    callers_threads = torch.get_num_threads()
    backbone = ContendedBackbone(tiny_backbone)
    with BatchingEncoder(backbone) as encoder:
        for _ in range(10):
            encoder.encode(one_image())
        assert encoder.torch_threads is None and encoder.tuned_threads(1) == 1
    assert sorted(backbone.seen[:6]) == [1, 1, 1, 2, 2, 2]  # warm-up: each choice three times
    assert backbone.seen[6:] == [1, 1, 1, 1]
    assert torch.get_num_threads() == callers_threads


def test_a_single_choice_is_fixed_without_tuning(
    tiny_backbone: Backbone, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encoder_module, "thread_choices", lambda device: [1])
    with BatchingEncoder(tiny_backbone) as encoder:
        assert encoder.torch_threads == 1


def test_invalid_thread_count_is_refused(tiny_backbone: Backbone) -> None:
    with pytest.raises(ValueError, match="torch_threads"):
        BatchingEncoder(tiny_backbone, torch_threads=0)

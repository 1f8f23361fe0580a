"""Fixtures for the embeddings tests: one seeded tiny-clip backbone shared by the session."""

from __future__ import annotations

import pytest
import torch

from embeddings import Backbone, load_backbone


@pytest.fixture(scope="session")
def tiny_backbone() -> Backbone:
    """The real open_clip code path with a tiny random model, on the CPU."""
    return load_backbone("tiny-clip", device="cpu")


@pytest.fixture
def one_torch_thread() -> object:
    """One thread: on a busy shared machine an OpenMP team stalls for 100+ ms at a time (the
    precision and ONNX Runtime tests time towers; ``pytestmark`` asks for it there)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

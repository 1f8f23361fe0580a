"""Fixtures for the embeddings tests: one seeded tiny-clip backbone shared by the session."""

from __future__ import annotations

import pytest

from embeddings import Backbone, load_backbone


@pytest.fixture(scope="session")
def tiny_backbone() -> Backbone:
    """The real open_clip code path with a tiny random model, on the CPU."""
    return load_backbone("tiny-clip", device="cpu")

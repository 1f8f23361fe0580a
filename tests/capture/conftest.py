"""Synthetic data for the capture tests: clustered unit vectors and random probabilities."""

from __future__ import annotations

import numpy as np
import pytest


def clustered_vectors(
    n: int, dim: int, *, clusters: int = 50, spread: float = 0.6, seed: int = 0
) -> np.ndarray:
    """``n`` L2-normalised float32 vectors around ``clusters`` random unit centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    members = rng.integers(0, clusters, n)
    noise = spread * rng.standard_normal((n, dim)) / np.sqrt(dim)
    vectors = centres[members] + noise
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def random_probabilities(n: int, k: int, *, seed: int = 0) -> np.ndarray:
    """Softmax of random logits with varied temperature: a spread of confident and unsure rows."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, k)) * rng.uniform(0.2, 6.0, size=(n, 1))
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def exact_neighbours(queries: np.ndarray, base: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the ``k`` highest inner products, best first (brute force)."""
    return np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :k]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)

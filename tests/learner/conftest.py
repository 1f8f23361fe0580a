"""Synthetic embeddings for learner tests: Gaussian clusters on the unit sphere."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

ClusterFactory = Callable[..., tuple[np.ndarray, list[str]]]


def make_clusters(
    counts: dict[str, int],
    *,
    dim: int = 64,
    noise: float = 0.3,
    seed: int = 0,
    sample_seed: int | None = None,
) -> tuple[np.ndarray, list[str]]:
    """L2-normalised samples around one random unit centre per label (``counts[label]`` each).

    ``noise`` is the norm of the Gaussian perturbation added to a unit centre before
    re-normalising, so 0.3 gives well-separated clusters in 64 dimensions. ``seed`` fixes the
    centres; ``sample_seed`` (default: ``seed``) the samples, so a test set can share the centres.
    """
    centres = np.random.default_rng(seed).normal(size=(len(counts), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng([seed, seed if sample_seed is None else sample_seed])
    vectors, labels = [], []
    for centre, (label, count) in zip(centres, counts.items(), strict=True):
        points = centre + rng.normal(scale=noise / np.sqrt(dim), size=(count, dim))
        vectors.append(points)
        labels.extend([label] * count)
    X = np.concatenate(vectors).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    order = rng.permutation(len(labels))
    return X[order], [labels[i] for i in order]


@pytest.fixture
def clusters() -> ClusterFactory:
    return make_clusters

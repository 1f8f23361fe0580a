"""Coverage balancing: spread captures over the regions of traffic instead of one hard boundary.

Margin sampling alone keeps capturing the same few confusable regions (in Fashion-MNIST: shirt /
T-shirt / pullover / coat), many of them before the head is retrained and learns anything from the
first ones. Cluster-margin sampling (Citovsky et al. 2021, "Batch active learning at scale")
fixes that by choosing each batch's uncertain inputs round-robin over clusters of the data,
smallest cluster first. :class:`TrafficClusters` is its online, per-input form:

* the embedding space is split into ``k`` regions by sequential k-means on the traffic itself
  (MacQueen's update, one input at a time, O(k * dim) per input): the first ``k`` inputs seed the
  centroids and every later input moves its nearest centroid towards it;
* every capture is counted against its region, and with a memory (the policy's
  ``coverage_memory``, by default as many captures as regions) older captures fade: cluster-margin
  spreads the picks of one batch over the clusters, it does not equalise every label ever taken.
  All-time counts keep lifting regions the head learnt long ago (with 2000 labels, 40 per region
  on average, an empty region's odds are multiplied by 41; see B1 in docs/capture-and-review.md
  for what the memory changes);
* the odds of an input's score are multiplied by :func:`coverage_weight` of its region (see
  :func:`weighted_score`): regions that already have more captures than the average get a weight
  below 1, regions with fewer a weight above 1.

Because regions come from traffic density (k-means centroids sit where inputs are), an isolated
outlier does not get a region of its own: unlike raw kNN novelty, balancing does not chase
outliers, the failure mode of diversity sampling at small budgets (Hacohen et al. 2022).
"""

from __future__ import annotations

import numpy as np

# A centroid moves by 1 / min(count, MAX_STEP_COUNT) towards each new member, so it keeps
# following slow drift in the traffic instead of freezing once it has seen many inputs.
MAX_STEP_COUNT = 1000


def coverage_weight(captures: float, mean_captures: float, strength: float) -> float:
    """``((1 + mean) / (1 + captures)) ** strength``: > 1 for under-covered regions.

    Args:
        captures: captures already counted in the input's region.
        mean_captures: mean captures per region.
        strength: 0 disables balancing (weight 1); larger values balance harder.
    """
    return float(((1.0 + mean_captures) / (1.0 + captures)) ** strength)


def weighted_score(score: float, weight: float) -> float:
    """Multiply the odds ``score / (1 - score)`` by ``weight``; stays within [0, 1].

    Scaling odds rather than the score itself never pushes a score to exactly 1 (only a score of
    1 stays 1), so scores never pile up at a cap where an adaptive quantile threshold would stop
    letting anything through, and it keeps the order of inputs within a region.

    Args:
        score: in [0, 1].
        weight: positive.
    """
    if score >= 1.0:
        return 1.0
    return float(score * weight / (1.0 + score * (weight - 1.0)))


class TrafficClusters:
    """Online k-means over unit vectors with a capture count per cluster; not thread-safe."""

    def __init__(self, n_clusters: int, dim: int) -> None:
        """Start with no centroids.

        Args:
            n_clusters: number of regions ``k`` (>= 1).
            dim: vector dimension.
        """
        if n_clusters < 1:
            raise ValueError(f"n_clusters must be at least 1, got {n_clusters}")
        self.n_clusters = n_clusters
        self.dim = dim
        self._centroids = np.zeros((n_clusters, dim), dtype=np.float64)
        self._members = np.zeros(n_clusters, dtype=np.int64)
        self._captures = np.zeros(n_clusters, dtype=np.float64)
        self._seeded = 0

    @property
    def seeded(self) -> int:
        """How many centroids exist so far (``n_clusters`` once traffic has seeded them all)."""
        return self._seeded

    def nbytes(self) -> int:
        return self._centroids.nbytes + self._members.nbytes + self._captures.nbytes

    def assign(self, vector: np.ndarray) -> int:
        """The region of ``vector``, learning from it (it seeds a centroid or moves one).

        Args:
            vector: a unit vector, shape ``(dim,)``.
        """
        point = np.asarray(vector, dtype=np.float64).reshape(-1)
        if self._seeded < self.n_clusters:
            cluster = self._seeded
            self._centroids[cluster] = point
            self._members[cluster] = 1
            self._seeded += 1
            return cluster
        cluster = int(np.argmax(self._centroids @ point))
        self._members[cluster] += 1
        step = 1.0 / min(int(self._members[cluster]), MAX_STEP_COUNT)
        self._centroids[cluster] += step * (point - self._centroids[cluster])
        return cluster

    def weight(self, cluster: int, strength: float) -> float:
        """:func:`coverage_weight` of ``cluster`` against the mean over seeded clusters."""
        seeded = max(self._seeded, 1)
        mean = float(self._captures[:seeded].mean())
        return coverage_weight(float(self._captures[cluster]), mean, strength)

    def count_capture(self, cluster: int, memory: int = 0) -> None:
        """Count one capture against ``cluster``; with a ``memory`` > 0, every earlier capture
        first fades by ``e ** (-1 / memory)`` (one ``memory`` captures old weighs 1/e)."""
        if memory:
            self._captures *= np.exp(-1.0 / memory)
        self._captures[cluster] += 1.0

    def uncount_capture(self, cluster: int) -> None:
        """Take back a capture that was not persisted (the fade it applied to earlier captures,
        one step of a memory, stays)."""
        self._captures[cluster] = max(0.0, self._captures[cluster] - 1.0)

"""New-class proposals: tight clusters of novel inputs, a class the function does not have yet.

Novel captures (and items a reviewer marked "none of these labels") are clustered by
agglomerative clustering on cosine distance with average linkage: two groups merge while the
mean distance between their members stays under ``max_distance``. That bound is set from the
function's own labelled data (:func:`class_spread`: how far apart members of a typical labelled
class are), so "tight enough" means "no looser than a class the function already has", on any
backbone. A cluster with at least ``min_size`` members is a proposal.

A proposal's id comes from its oldest member, so it stays the same while the cluster grows with
new captures; it changes only when that member leaves (annotated, dismissed) or the clusters are
cut differently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.cluster import AgglomerativeClustering

from capture.errors import InvalidArray
from capture.scores import unit_rows

# Members of a labelled class sampled to estimate its spread (the estimate is a mean).
_SPREAD_SAMPLE = 200


@dataclass(frozen=True)
class Proposal:
    """One cluster of novel items that could become a label."""

    id: str
    # Members, oldest first.
    item_ids: list[str]
    # Mean cosine distance between two members (the tightness the clustering bounded).
    spread: float
    # The labelled class whose mean is most similar to the cluster's, and that similarity;
    # None when the function has no labelled data.
    nearest_label: str | None
    nearest_similarity: float | None

    @property
    def size(self) -> int:
        return len(self.item_ids)


def proposal_id(oldest_item_id: str) -> str:
    """The stable id of a proposal whose oldest member is ``oldest_item_id``."""
    return "proposal_" + hashlib.sha256(oldest_item_id.encode()).hexdigest()[:20]


def mean_pairwise_distance(vectors: np.ndarray) -> float:
    """Mean cosine distance ``1 - cos`` over distinct pairs of unit rows (0 for fewer than 2)."""
    n = vectors.shape[0]
    if n < 2:
        return 0.0
    total = vectors.sum(axis=0)
    # sum over ordered pairs i != j of cos = |sum|^2 - n for unit rows
    mean_cos = (float(total @ total) - n) / (n * (n - 1))
    return 1.0 - mean_cos


def class_spread(vectors: ArrayLike, labels: ArrayLike, *, seed: int = 0) -> float:
    """Median over labelled classes of their mean pairwise cosine distance.

    Args:
        vectors: labelled embeddings, shape ``(n, dim)``, unit rows.
        labels: class per row.
        seed: for subsampling large classes.

    Returns:
        The typical tightness of a labelled class; NaN with no class of at least 2 members.
    """
    matrix = unit_rows(vectors)
    names = np.asarray(labels)
    rng = np.random.default_rng(seed)
    spreads = []
    for name in np.unique(names):
        members = np.flatnonzero(names == name)
        if members.shape[0] < 2:
            continue
        if members.shape[0] > _SPREAD_SAMPLE:
            members = rng.choice(members, _SPREAD_SAMPLE, replace=False)
        spreads.append(mean_pairwise_distance(matrix[members]))
    return float(np.median(spreads)) if spreads else float("nan")


def cluster_novel_items(
    item_ids: Sequence[str],
    vectors: ArrayLike,
    *,
    max_distance: float,
    min_size: int,
    class_means: dict[str, np.ndarray] | None = None,
) -> list[Proposal]:
    """Proposals among novel items, largest first.

    Args:
        item_ids: the items, oldest first.
        vectors: their embeddings, shape ``(n, dim)``.
        max_distance: average-linkage cosine distance at which clusters stop merging.
        min_size: fewest members a proposal has.
        class_means: labelled class name -> mean embedding, for ``nearest_label``.
    """
    matrix = unit_rows(vectors)
    if matrix.shape[0] != len(item_ids):
        raise InvalidArray(f"{len(item_ids)} item ids for {matrix.shape[0]} vectors")
    if min_size < 2 or matrix.shape[0] < min_size or not np.isfinite(max_distance):
        return []
    clustering = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=max_distance
    )
    assignment = clustering.fit_predict(matrix)
    known = class_means or {}
    names = list(known)
    means = unit_rows(np.stack([known[n] for n in names])) if names else None
    proposals = []
    for cluster in np.unique(assignment):
        members = np.flatnonzero(assignment == cluster)  # ascending: oldest first
        if members.shape[0] < min_size:
            continue
        nearest, similarity = None, None
        if means is not None:
            centroid = matrix[members].mean(axis=0)
            centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
            similarities = means @ centroid
            best = int(np.argmax(similarities))
            nearest, similarity = names[best], float(similarities[best])
        ids = [item_ids[int(i)] for i in members]
        proposals.append(
            Proposal(
                id=proposal_id(ids[0]),
                item_ids=ids,
                spread=mean_pairwise_distance(matrix[members]),
                nearest_label=nearest,
                nearest_similarity=similarity,
            )
        )
    return sorted(proposals, key=lambda p: (-p.size, p.id))

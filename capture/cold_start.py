"""Cold-start capture: before any head exists, queue inputs that are typical of the traffic and
spread over its regions, so the first labels a reviewer gives represent what production sends.

Without a head there is no uncertainty to rank by, and kNN novelty alone chases outliers, the
failure mode of diversity sampling at small budgets. TypiClust (Hacohen et al. 2022, "Active
learning on a budget") picks instead, in every cluster of the data not yet covered by a label,
the member of highest *typicality*, the inverse of the mean distance to its ``k`` nearest
neighbours. :class:`ColdStartSelector` is its streamed form:

* a bounded ring buffer (the *reservoir*) keeps the last ``reservoir_size`` traffic vectors;
* it is clustered (spherical k-means, FAISS) into ``covered + new_clusters`` regions, as TypiClust
  uses ``|labelled| + budget`` clusters, and refitted every ``refit_every`` inputs or after a
  cold-start capture (a refit costs one k-means and one Gram matrix of the reservoir, only until
  the first head). With ``refit_inline`` the input that makes a refit due pays for it before it
  is judged; without, :attr:`ColdStartSelector.refit_due` tells the owner to call
  :meth:`ColdStartSelector.fit` on a copy of the reservoir off the request path and
  :meth:`ColdStartSelector.install` the result, while inputs are judged by the clustering in
  force meanwhile (the service does this, see :mod:`service.serving`); a region is *covered* once a
  labelled or queued item lies within the region's radius of its centroid (searched in the
  function's index) or a cold-start capture fell in it since the refit;
* an input in an uncovered region of at least ``min_cluster_size`` members whose typicality (in
  the reservoir) reaches the ``1 - top_fraction`` quantile of its region's members' is captured:
  one of the most typical members of that region, as close to TypiClust's pick as a stream that
  cannot go back to an earlier input allows.

Pure numpy/FAISS, no database; the controller calls :meth:`ColdStartSelector.judge` under its lock.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from capture.index import VectorIndex
from capture.ring import RowRing


@dataclass(frozen=True)
class ColdStartJudgement:
    """What the selector made of one input."""

    # The input is typical of an uncovered region: capture it (reason "cold_start").
    wanted: bool
    # Percentile of the input's typicality among the reservoir's members, in [0, 1].
    typicality: float
    # The input's region in the current clustering; None while the reservoir is warming up.
    region: int | None
    # Too little traffic seen yet to tell what is typical.
    warming_up: bool


@dataclass(frozen=True)
class ColdStartFit:
    """One clustering of the reservoir, computed by :meth:`ColdStartSelector.fit`."""

    centroids: np.ndarray
    # Per region: the typicality an input must reach (inf: covered, or too small).
    bars: np.ndarray
    # The members' typicalities, sorted (an input's rank among them is its percentile).
    typicalities: np.ndarray
    # ``seen`` when the reservoir was copied: captures since then close regions again.
    seen: int


class ColdStartSelector:
    """Streamed TypiClust over a reservoir of recent traffic; not thread-safe (the owner
    serialises :meth:`judge`, :meth:`captured`, :meth:`members` and :meth:`install`; :meth:`fit`
    touches only its arguments and may run anywhere)."""

    def __init__(
        self,
        dim: int,
        *,
        reservoir_size: int = 1000,
        min_traffic: int = 100,
        knn_k: int = 20,
        new_clusters: int = 10,
        min_cluster_size: int = 5,
        top_fraction: float = 0.1,
        refit_every: int = 100,
        seed: int = 0,
        refit_inline: bool = True,
    ) -> None:
        """Start with an empty reservoir.

        Args:
            dim: vector dimension.
            reservoir_size: recent traffic vectors kept (memory: up to ``reservoir_size * dim``
                floats, growing with the traffic seen).
            min_traffic: inputs seen before anything is judged typical.
            knn_k: neighbours in the typicality estimate (TypiClust uses 20).
            new_clusters: uncovered regions offered at each refit (TypiClust's budget per round).
            min_cluster_size: smaller regions are outliers, never captured from.
            top_fraction: an input must be among this most typical share of its region.
            refit_every: inputs between refits when nothing was captured.
            seed: seeds k-means.
            refit_inline: refit inside :meth:`judge` when due (else the owner schedules it).
        """
        self.dim = dim
        self._min_traffic, self._k = min_traffic, knn_k
        self._new_clusters, self._min_cluster = new_clusters, min_cluster_size
        self._top_fraction, self._refit_every, self._seed = top_fraction, refit_every, seed
        self._refit_inline = refit_inline
        self._captured_since_copy = False  # a capture since :meth:`members`: refit again
        # A capture made the clustering stale and its refit has not landed: judge nothing until
        # it has (as inline refits judge the next input by fresh regions).
        self._awaiting_refit = False
        self._reservoir = RowRing(reservoir_size, dim)
        self._since_refit = 0
        self._centroids = np.zeros((0, dim), dtype=np.float32)
        self._bars = np.zeros(0)  # per region: typicality an input must reach (inf: closed)
        self._typicalities = np.zeros(0)  # the reservoir members' at the last refit, sorted

    @property
    def filled(self) -> int:
        """Vectors in the reservoir."""
        return self._reservoir.filled

    @property
    def refit_due(self) -> bool:
        """Enough traffic to cluster, and no clustering yet or one ``refit_every`` inputs old (or
        older than a capture)."""
        return self.filled >= self._min_traffic and (
            not len(self._centroids) or self._since_refit >= self._refit_every
        )

    def judge(self, vector: np.ndarray, index: VectorIndex) -> ColdStartJudgement:
        """Judge one input, then add it to the reservoir.

        Args:
            vector: the input's unit vector, shape ``(dim,)``.
            index: the function's labelled and pending items (searched at refits to find
                covered regions; its size plus ``new_clusters`` is the number of regions).
        """
        point = np.asarray(vector, dtype=np.float32).reshape(-1)
        judgement = ColdStartJudgement(False, 0.0, None, True)
        if self._refit_inline and self.refit_due:
            self.install(self.fit(self.members(), self.seen, index))
        if self._awaiting_refit:
            pass  # warming up again: the regions are being refitted after a capture
        elif len(self._centroids):
            typicality = self._typicality(point)
            region = int(np.argmax(self._centroids @ point))
            rank = np.searchsorted(self._typicalities, typicality) / max(len(self._typicalities), 1)
            judgement = ColdStartJudgement(
                typicality >= self._bars[region], float(rank), region, False
            )
        self._reservoir.append(point)
        self._since_refit += 1
        return judgement

    def captured(self, region: int | None) -> None:
        """Mark ``region`` covered by a capture (it takes no other until the next refit, and the
        next refit offers fresh regions)."""
        if region is not None and 0 <= region < len(self._bars):
            self._bars[region] = np.inf
        self._captured_since_copy = True
        self._awaiting_refit = not self._refit_inline
        self._since_refit = self._refit_every  # refit at the next input

    def members(self) -> np.ndarray:
        """A copy of the reservoir's vectors, what :meth:`fit` clusters."""
        self._captured_since_copy = False
        return self._reservoir.rows().copy()

    @property
    def seen(self) -> int:
        return self._reservoir.seen

    def install(self, fitted: ColdStartFit) -> None:
        """Judge by ``fitted`` from now on; a capture made since its copy was taken (the new
        regions do not know it) makes the next refit due at once, judging nothing meanwhile."""
        self._centroids, self._bars = fitted.centroids, fitted.bars.copy()
        self._typicalities = fitted.typicalities
        self._since_refit = (
            self._refit_every if self._captured_since_copy else self.seen - fitted.seen
        )
        self._awaiting_refit = self._captured_since_copy

    def _typicality(self, point: np.ndarray) -> float:
        similarities = self._reservoir.rows() @ point
        k = min(self._k, len(similarities))
        nearest = np.partition(similarities, len(similarities) - k)[-k:]
        return _inverse_mean_distance(nearest)

    def fit(self, members: np.ndarray, seen: int, index: VectorIndex) -> ColdStartFit:
        """Cluster ``members`` (from :meth:`members`, copied when ``seen`` inputs had been) and
        set each region's bar (``inf`` where covered or too small)."""
        n_clusters = int(
            min(len(index) + self._new_clusters, max(1, len(members) // self._min_cluster))
        )
        kmeans = faiss.Kmeans(
            self.dim,
            n_clusters,
            niter=20,
            seed=self._seed + seen,
            spherical=True,
            min_points_per_centroid=1,
        )
        kmeans.train(members)
        centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
        gram = members @ members.T
        np.fill_diagonal(gram, -np.inf)
        k = min(self._k, len(members) - 1)
        nearest = np.partition(gram, gram.shape[1] - k, axis=1)[:, -k:]
        typicalities = np.array([_inverse_mean_distance(row) for row in nearest])
        assigned = np.argmax(members @ centroids.T, axis=1)
        covered = _covered(centroids, members, assigned, index)
        bars = np.full(n_clusters, np.inf)
        for region in range(n_clusters):
            inside = typicalities[assigned == region]
            if len(inside) >= self._min_cluster and not covered[region]:
                bars[region] = np.quantile(inside, 1.0 - self._top_fraction)
        return ColdStartFit(centroids, bars, np.sort(typicalities), seen)

    def nbytes(self) -> int:
        """Memory the reservoir and the clustering hold."""
        return self._reservoir.nbytes() + self._centroids.nbytes + self._typicalities.nbytes


def _covered(
    centroids: np.ndarray, members: np.ndarray, assigned: np.ndarray, index: VectorIndex
) -> np.ndarray:
    """Regions with a labelled or queued item within their radius: as close to the centroid as
    the closer half of the region's own members."""
    covered = np.zeros(len(centroids), dtype=bool)
    if not len(index):
        return covered
    nearest = index.search(centroids, 1).similarities[:, 0].astype(np.float64)
    for region in range(len(centroids)):
        inside = members[assigned == region] @ centroids[region]
        if len(inside) and not np.isnan(nearest[region]):
            covered[region] = nearest[region] >= np.median(inside)
    return covered


def _inverse_mean_distance(similarities: np.ndarray) -> float:
    """TypiClust's typicality from cosine similarities to the nearest neighbours."""
    distance = float(np.mean(1.0 - np.asarray(similarities, dtype=np.float64)))
    return 1.0 / max(distance, 1e-6)

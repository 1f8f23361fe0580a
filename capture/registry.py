"""One :class:`VectorIndex` per function, created on demand and rebuilt from storage at start-up."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable

import numpy as np
from numpy.typing import ArrayLike

from capture.errors import DimensionMismatch
from capture.index import Kind, VectorIndex

IndexFactory = Callable[[int], VectorIndex]
_REBUILD_BATCH = 4096


class IndexRegistry:
    """Thread-safe map ``function_id -> VectorIndex``.

    The index lives in memory only: the database (vectors of samples and pending queue items) is
    the source of truth, and :meth:`rebuild` reloads it when the service starts.
    """

    def __init__(self, *, make_index: IndexFactory = VectorIndex) -> None:
        """Create an empty registry.

        Args:
            make_index: builds a new index for a dimension; pass e.g.
                ``lambda dim: VectorIndex(dim, hnsw_threshold=2000)`` to tune every index.
        """
        self._make_index = make_index
        self._indexes: dict[Hashable, VectorIndex] = {}
        self._lock = threading.Lock()

    def get(self, function_id: Hashable) -> VectorIndex | None:
        """The function's index, or None if it has none yet."""
        with self._lock:
            return self._indexes.get(function_id)

    def get_or_create(self, function_id: Hashable, dim: int) -> VectorIndex:
        """The function's index, created empty on first use.

        Args:
            function_id: the function's key.
            dim: the function's embedding dimension; must match an existing index.

        Raises:
            DimensionMismatch: the function already has an index of another dimension.
        """
        with self._lock:
            index = self._indexes.get(function_id)
            if index is None:
                index = self._indexes[function_id] = self._make_index(dim)
        _check_dim(function_id, index, dim)
        return index

    def drop(self, function_id: Hashable) -> bool:
        """Forget a function's index (function deleted or backbone changed); True if it existed."""
        with self._lock:
            return self._indexes.pop(function_id, None) is not None

    def rebuild(
        self,
        function_id: Hashable,
        dim: int,
        items: Iterable[tuple[int, ArrayLike, Kind]],
    ) -> VectorIndex:
        """Build a fresh index from stored items and swap it in, replacing any existing one.

        The new index is filled (in bulk-load mode: any HNSW migration happens in this thread)
        before it becomes visible, so searches keep using the old one (if any) until the swap.

        Args:
            function_id: the function's key.
            dim: embedding dimension of the function's backbone.
            items: ``(id, vector, kind)`` triples, e.g. streamed from the database.

        Returns:
            The new index.
        """
        index = self._make_index(dim)
        _check_dim(function_id, index, dim)
        batches: dict[Kind, tuple[list[int], list[ArrayLike]]] = {}
        with index.bulk_load():
            for item_id, vector, kind in items:
                ids, vectors = batches.setdefault(kind, ([], []))
                ids.append(item_id)
                vectors.append(vector)
                if len(ids) >= _REBUILD_BATCH:
                    index.add(ids, np.stack(vectors), kind)
                    ids.clear()
                    vectors.clear()
            for kind, (ids, vectors) in batches.items():
                if ids:
                    index.add(ids, np.stack(vectors), kind)
        with self._lock:
            self._indexes[function_id] = index
        return index


def _check_dim(function_id: Hashable, index: VectorIndex, dim: int) -> None:
    if index.dim != dim:
        raise DimensionMismatch(
            f"function {function_id!r} has a {index.dim}-d index; got {dim}-d vectors "
            "(a function pins one backbone)"
        )

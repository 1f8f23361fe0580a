"""The per-function vector index: FAISS inner-product search over L2-normalised embeddings.

Each entry is an ``(kind, id)`` pair: ``kind`` is ``"labelled"`` (a training sample) or
``"pending"`` (a queued review item) and ``id`` is the caller's int64 key for it, so sample 7 and
queue item 7 can coexist. Inner product of unit vectors is cosine similarity.

Small indexes are exact (``IndexFlatIP`` in ``IndexIDMap2``). Past ``hnsw_threshold`` entries the
index migrates itself to ``IndexHNSWFlat`` (approximate, sub-linear search). HNSW cannot delete, so
removals there become tombstones filtered out at search time (a FAISS ``IDSelector``), and the
graph is rebuilt once tombstones exceed ``tombstone_rebuild_fraction`` of it. Migration and
compaction build the new index *outside* the write lock from a snapshot, then replay the writes
made meanwhile, so concurrent invokes keep searching (and writing) while a large index is rebuilt;
by default this runs in a background thread, because building HNSW takes seconds to minutes
(about 100 s for 100k x 512-d on two busy cores) and the write that triggers it may be an invoke.
Rebuilding briefly holds a second copy of the vectors.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, NamedTuple

import faiss
import numpy as np
from numpy.typing import ArrayLike

from capture.errors import DimensionMismatch, InvalidArray, UnknownKind
from capture.locks import ReadWriteLock

Kind = Literal["labelled", "pending"]
KINDS: tuple[Kind, ...] = ("labelled", "pending")
_KIND_NAMES = np.array(["", *KINDS])  # code 0 means "no neighbour"
_ADD_CHUNK = 8192
log = logging.getLogger("winnow.capture")


class SearchResult(NamedTuple):
    """Nearest neighbours per query, best first; unpacks as ``(similarities, ids, kinds)``."""

    similarities: np.ndarray  # (n, k) float32 cosine similarity; NaN where no neighbour
    ids: np.ndarray  # (n, k) int64 caller ids; -1 where no neighbour
    kinds: np.ndarray  # (n, k) str "labelled" | "pending"; "" where no neighbour


@contextmanager
def _omp_threads(count: int | None) -> Iterator[None]:
    """Limit FAISS's OpenMP threads in the calling thread (libgomp keeps the setting per thread)."""
    if count is None:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _kind_code(kind: str) -> int:
    if kind not in KINDS:
        raise UnknownKind(f"unknown index entry kind {kind!r}; use one of {', '.join(KINDS)}")
    return KINDS.index(kind) + 1


class VectorIndex:
    """Thread-safe nearest-neighbour index of one function's vectors (see the module notes)."""

    def __init__(
        self,
        dim: int,
        *,
        hnsw_threshold: int = 20_000,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 96,
        tombstone_rebuild_fraction: float = 0.2,
        search_threads: int | None = 1,
        background_rebuild: bool = True,
    ) -> None:
        """Create an empty exact index.

        Args:
            dim: vector dimension (pinned by the function's backbone).
            hnsw_threshold: switch to the approximate HNSW index once more entries than this.
            hnsw_m: HNSW graph degree (memory vs recall).
            ef_construction: HNSW build-time beam width (build time vs graph quality).
            ef_search: HNSW search beam width; the default keeps recall@10 >= 0.95 on
                clustered embeddings (see ``bench/capture_cost.py``).
            tombstone_rebuild_fraction: rebuild HNSW when this share of it is deleted entries.
            search_threads: OpenMP threads FAISS may use for one :meth:`search` call (set for
                the calling thread only, restored afterwards); None leaves FAISS's default.
                Invokes search one vector at a time while the web server already runs requests
                in parallel, so 1 is right there: on a busy 2-core machine a 2-thread
                single-query search measured ~6 ms against ~0.1 ms with 1 thread. Raise it for
                large offline batch searches.
            background_rebuild: run migrations and compactions in a background thread, so the
                write that triggers one returns at once (a live index); False runs them in the
                writing thread (bulk loads, deterministic tests).
        """
        if dim < 1:
            raise DimensionMismatch(f"dimension must be positive, got {dim}")
        if not 0.0 < tombstone_rebuild_fraction <= 1.0:
            raise ValueError("tombstone_rebuild_fraction must be within (0, 1]")
        if search_threads is not None and search_threads < 1:
            raise ValueError(f"search_threads must be at least 1, got {search_threads}")
        self._search_threads = search_threads
        self._background_rebuild = background_rebuild
        self._rebuild_thread: threading.Thread | None = None
        self._dim = dim
        self._hnsw_threshold = hnsw_threshold
        self._hnsw_m = hnsw_m
        self._ef_construction = ef_construction
        self._ef_search = ef_search
        self._tombstone_fraction = tombstone_rebuild_fraction
        self._lock = ReadWriteLock()
        self._index: faiss.IndexIDMap2 = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._approximate = False
        self._tombstones: set[int] = set()
        # "Not a tombstone" filter, rebuilt under the write lock whenever tombstones change; the
        # batch is kept referenced because the FAISS selector does not own it.
        self._selector: tuple[faiss.IDSelector, faiss.IDSelector] | None = None
        self._internal_by_key: dict[tuple[int, int], int] = {}  # (kind code, id) -> internal
        self._external_ids = np.zeros(1024, dtype=np.int64)  # indexed by internal id
        self._kind_codes = np.zeros(1024, dtype=np.int8)
        self._next_internal = 0
        # While a rebuild runs: writes made since its snapshot, as (internal ids, vectors) for an
        # add and (internal ids, None) for a removal, replayed onto the new index before the swap.
        self._change_log: list[tuple[np.ndarray, np.ndarray | None]] | None = None

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def is_approximate(self) -> bool:
        """True once the index has migrated to HNSW."""
        return self._approximate

    @property
    def is_rebuilding(self) -> bool:
        """True while a migration or compaction is in progress."""
        return self._change_log is not None

    def wait_for_rebuild(self, timeout: float | None = None) -> bool:
        """Block until a background rebuild (if any) has finished; False on timeout."""
        thread = self._rebuild_thread
        if thread is not None:
            thread.join(timeout)
        return not self.is_rebuilding

    @contextmanager
    def bulk_load(self) -> Iterator[VectorIndex]:
        """Within the block, rebuilds run in the writing thread (nobody searches yet).

        Loading many vectors this way migrates to HNSW as soon as the threshold is passed and
        adds the rest straight into it, instead of growing the flat index and a change log.
        """
        background, self._background_rebuild = self._background_rebuild, False
        try:
            self.wait_for_rebuild()
            yield self
        finally:
            self._background_rebuild = background

    def __len__(self) -> int:
        return len(self._internal_by_key)

    def nbytes(self) -> int:
        """Memory held (approximate): the vectors, HNSW's links and the id lookups."""
        entries = self._index.ntotal
        links = entries * self._hnsw_m * 2 * 4 if self._approximate else 0
        lookups = self._external_ids.nbytes + self._kind_codes.nbytes + 100 * len(self)
        return entries * self._dim * 4 + links + lookups

    def add(self, ids: ArrayLike, vectors: ArrayLike, kind: Kind) -> None:
        """Insert (or replace) entries; vectors are re-normalised defensively.

        Args:
            ids: shape ``(n,)`` int64 caller ids; an existing ``(kind, id)`` is replaced.
            vectors: shape ``(n, dim)``.
            kind: ``"labelled"`` or ``"pending"``.
        """
        code = _kind_code(kind)
        matrix = self._as_matrix(vectors)
        keys = np.asarray(ids, dtype=np.int64).reshape(-1)
        if keys.shape[0] != matrix.shape[0]:
            raise InvalidArray(f"{keys.shape[0]} ids for {matrix.shape[0]} vectors")
        for start in range(0, keys.shape[0], _ADD_CHUNK):
            chunk = slice(start, start + _ADD_CHUNK)
            self._add_chunk(keys[chunk], matrix[chunk], code)
            self._maybe_rebuild()

    def remove(self, ids: ArrayLike, kind: Kind | None = None) -> int:
        """Delete entries; unknown ids are ignored.

        Args:
            ids: caller ids to delete.
            kind: only entries of this kind; ``None`` deletes the ids under every kind.

        Returns:
            How many entries were deleted.
        """
        codes = [_kind_code(kind)] if kind is not None else [1, 2]
        keys = np.asarray(ids, dtype=np.int64).reshape(-1)
        with self._lock.write():
            internal = [
                self._internal_by_key.pop((code, int(key)))
                for key in keys
                for code in codes
                if (code, int(key)) in self._internal_by_key
            ]
            self._delete_internal(np.asarray(internal, dtype=np.int64))
        self._maybe_rebuild()
        return len(internal)

    def search(self, vectors: ArrayLike, k: int) -> SearchResult:
        """The ``k`` most similar entries to each query vector.

        Args:
            vectors: shape ``(n, dim)`` queries.
            k: neighbours per query (at least 1).

        Returns:
            A :class:`SearchResult`; rows are padded (NaN, -1, "") when fewer than ``k`` exist.
        """
        if k < 1:
            raise InvalidArray(f"k must be at least 1, got {k}")
        queries = self._as_matrix(vectors)
        with self._lock.read():
            if self._index.ntotal == 0:
                internal = np.full((queries.shape[0], k), -1, dtype=np.int64)
                similarities = np.full((queries.shape[0], k), np.nan, dtype=np.float32)
            else:
                with _omp_threads(self._search_threads):
                    similarities, internal = self._index.search(queries, k, params=self._params(k))
            missing = internal < 0
            safe = np.where(missing, 0, internal)
            ids = np.where(missing, -1, self._external_ids[safe])
            kinds = _KIND_NAMES[np.where(missing, 0, self._kind_codes[safe])]
        similarities = np.where(missing, np.nan, similarities).astype(np.float32)
        return SearchResult(similarities, ids, kinds)

    # -- internals (callers hold the write lock unless stated) -----------------------------------

    def _as_matrix(self, vectors: ArrayLike) -> np.ndarray:
        matrix = np.array(vectors, dtype=np.float32, order="C", copy=True)
        if matrix.ndim != 2 or matrix.shape[1] != self._dim:
            raise DimensionMismatch(
                f"vectors must be shaped (n, {self._dim}), got shape {matrix.shape}"
            )
        if not np.all(np.isfinite(matrix)):
            raise InvalidArray("vectors contain NaN or infinite values")
        faiss.normalize_L2(matrix)
        return matrix

    def _add_chunk(self, keys: np.ndarray, matrix: np.ndarray, code: int) -> None:
        # Within one call the last occurrence of a repeated id wins.
        _, last_reversed = np.unique(keys[::-1], return_index=True)
        keep = np.sort(keys.shape[0] - 1 - last_reversed)
        keys, matrix = keys[keep], matrix[keep]
        with self._lock.write():
            replaced = [
                self._internal_by_key.pop((code, int(key)))
                for key in keys
                if (code, int(key)) in self._internal_by_key
            ]
            self._delete_internal(np.asarray(replaced, dtype=np.int64))
            internal = np.arange(self._next_internal, self._next_internal + keys.shape[0])
            self._next_internal += keys.shape[0]
            self._grow_lookup(self._next_internal)
            self._external_ids[internal] = keys
            self._kind_codes[internal] = code
            self._index.add_with_ids(matrix, internal)
            for key, internal_id in zip(keys.tolist(), internal.tolist(), strict=True):
                self._internal_by_key[(code, key)] = internal_id
            if self._change_log is not None:
                self._change_log.append((internal, matrix))

    def _grow_lookup(self, size: int) -> None:
        if size <= self._external_ids.shape[0]:
            return
        capacity = max(size, 2 * self._external_ids.shape[0])
        self._external_ids = np.resize(self._external_ids, capacity)
        self._kind_codes = np.resize(self._kind_codes, capacity)

    def _delete_internal(self, internal: np.ndarray) -> None:
        if internal.size == 0:
            return
        if self._approximate:
            self._tombstones.update(internal.tolist())
            self._selector = _tombstone_filter(self._tombstones)
        else:
            self._index.remove_ids(faiss.IDSelectorBatch(internal))
        if self._change_log is not None:
            self._change_log.append((internal, None))

    def _params(self, k: int) -> faiss.SearchParameters | None:
        """Search parameters (caller holds the read lock); None for the exact index."""
        if not self._approximate:
            return None
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # missing in stubs
        params.efSearch = max(self._ef_search, k)
        if self._selector is not None:
            params.sel = self._selector[0]
        return params

    def _needs_rebuild(self) -> bool:
        if self._change_log is not None:
            return False  # a rebuild is already running
        if not self._approximate:
            return len(self._internal_by_key) > self._hnsw_threshold
        return len(self._tombstones) > self._tombstone_fraction * max(self._index.ntotal, 1)

    def _maybe_rebuild(self) -> None:
        """Start a migration to HNSW or a tombstone compaction if one is due."""
        if not self._needs_rebuild():  # unlocked fast path; re-checked under the lock
            return
        with self._lock.write():
            if not self._needs_rebuild():
                return
            internal = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            vectors = self._index.index.reconstruct_n(0, self._index.ntotal)
            alive = np.isin(internal, np.fromiter(self._tombstones, dtype=np.int64), invert=True)
            self._change_log = []
        if self._background_rebuild:
            self._rebuild_thread = threading.Thread(
                target=self._rebuild_from,
                args=(internal[alive], vectors[alive]),
                name="winnow-index-rebuild",
                daemon=True,
            )
            self._rebuild_thread.start()
        else:
            self._rebuild_from(internal[alive], vectors[alive])

    def _rebuild_from(self, internal: np.ndarray, vectors: np.ndarray) -> None:
        """Build HNSW from a snapshot, catch up with the change log, swap (takes the lock)."""
        try:
            rebuilt = self._new_hnsw()
            _add_in_chunks(rebuilt, internal, vectors)
            tombstones: set[int] = set()
            while True:
                # Catch up outside the lock in rounds; swap only once a round finds no news, so
                # searches are never blocked for longer than the final bookkeeping.
                with self._lock.write():
                    changes = self._change_log or []
                    if not changes:
                        self._index, self._approximate = rebuilt, True
                        self._tombstones = tombstones
                        self._selector = _tombstone_filter(tombstones) if tombstones else None
                        self._change_log = None
                        return
                    self._change_log = []
                for ids, matrix in changes:
                    if matrix is None:
                        tombstones.update(ids.tolist())
                    else:
                        _add_in_chunks(rebuilt, ids, matrix)
        except BaseException:
            with self._lock.write():
                self._change_log = None  # keep serving the old index, which has every write
            if not self._background_rebuild:
                raise
            log.exception("rebuilding a %d-d vector index failed; keeping the old one", self._dim)

    def _new_hnsw(self) -> faiss.IndexIDMap2:
        hnsw = faiss.IndexHNSWFlat(self._dim, self._hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = self._ef_construction
        hnsw.hnsw.efSearch = self._ef_search
        return faiss.IndexIDMap2(hnsw)


def _add_in_chunks(index: faiss.IndexIDMap2, internal: np.ndarray, vectors: np.ndarray) -> None:
    for start in range(0, internal.shape[0], _ADD_CHUNK):
        chunk = slice(start, start + _ADD_CHUNK)
        index.add_with_ids(vectors[chunk], internal[chunk])


def _tombstone_filter(tombstones: set[int]) -> tuple[faiss.IDSelector, faiss.IDSelector]:
    """A FAISS selector accepting every id except ``tombstones``, plus the batch it points to."""
    batch = faiss.IDSelectorBatch(np.fromiter(tombstones, dtype=np.int64))
    return faiss.IDSelectorNot(batch), batch

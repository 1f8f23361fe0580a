from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from capture import DimensionMismatch, InvalidArray, UnknownKind, VectorIndex

from .conftest import clustered_vectors, exact_neighbours


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(row) & set(expected)) for row, expected in zip(found, truth, strict=True)]
    return sum(hits) / truth.size


def test_empty_index_returns_padded_rows() -> None:
    index = VectorIndex(8)
    similarities, ids, kinds = index.search(np.eye(8, dtype=np.float32)[:2], 3)
    assert similarities.shape == ids.shape == kinds.shape == (2, 3)
    assert np.all(np.isnan(similarities))
    assert np.all(ids == -1)
    assert np.all(kinds == "")
    assert len(index) == 0


def test_exact_search_matches_numpy() -> None:
    vectors = clustered_vectors(600, 32, clusters=10, seed=1)
    base, queries = vectors[:500], vectors[500:]
    index = VectorIndex(32)
    index.add(np.arange(1000, 1500), base, "labelled")
    similarities, ids, kinds = index.search(queries, 10)
    expected = exact_neighbours(queries, base, 10) + 1000
    assert recall_at(ids, expected) == 1.0
    np.testing.assert_allclose(
        similarities, np.sort(queries @ base.T, axis=1)[:, ::-1][:, :10], atol=1e-5
    )
    assert np.all(kinds == "labelled")
    assert not index.is_approximate


def test_incremental_add_kinds_and_padding() -> None:
    vectors = clustered_vectors(6, 16, clusters=2, seed=2)
    index = VectorIndex(16)
    index.add([1, 2], vectors[:2], "labelled")
    index.add([3], vectors[2:3], "pending")
    assert len(index) == 3
    similarities, ids, kinds = index.search(vectors[2:3], 5)
    assert ids[0, 0] == 3 and kinds[0, 0] == "pending"
    assert similarities[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert set(ids[0, :3]) == {1, 2, 3}
    assert np.all(ids[0, 3:] == -1) and np.all(np.isnan(similarities[0, 3:]))


def test_same_id_under_two_kinds_coexists_and_readding_replaces() -> None:
    vectors = clustered_vectors(3, 16, clusters=3, seed=3)
    index = VectorIndex(16)
    index.add([7], vectors[:1], "labelled")
    index.add([7], vectors[1:2], "pending")
    assert len(index) == 2
    index.add([7], vectors[2:3], "pending")  # replaces the pending 7
    assert len(index) == 2
    _, ids, kinds = index.search(vectors[1:2], 2)
    assert sorted(kinds[0].tolist()) == ["labelled", "pending"]
    similarities, _, _ = index.search(vectors[2:3], 1)
    assert similarities[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_vectors_are_renormalised() -> None:
    index = VectorIndex(4)
    index.add([1], [[3.0, 0.0, 0.0, 0.0]], "labelled")
    similarities, _, _ = index.search([[0.0, 2.0, 0.0, 2.0], [5.0, 0.0, 0.0, 0.0]], 1)
    np.testing.assert_allclose(similarities[:, 0], [0.0, 1.0], atol=1e-6)


def test_removal_by_id_and_kind() -> None:
    vectors = clustered_vectors(4, 16, clusters=4, seed=4)
    index = VectorIndex(16)
    index.add([1, 2], vectors[:2], "labelled")
    index.add([2, 3], vectors[2:4], "pending")
    assert index.remove([2], "pending") == 1
    assert index.remove([99]) == 0
    _, ids, kinds = index.search(vectors[2:3], 4)
    assert ("pending", 2) not in set(zip(kinds[0].tolist(), ids[0].tolist(), strict=True))
    assert index.remove([1, 3]) == 2
    assert len(index) == 1
    _, ids, _ = index.search(vectors, 4)
    assert set(ids.ravel().tolist()) == {2, -1}


def test_switches_to_hnsw_with_high_recall_and_supports_removal() -> None:
    vectors = clustered_vectors(5200, 64, clusters=50, seed=5)
    base, queries = vectors[:5000], vectors[5000:]
    index = VectorIndex(64, hnsw_threshold=2000)
    index.add(np.arange(1500), base[:1500], "labelled")
    assert not index.is_approximate
    index.add(np.arange(1500, 5000), base[1500:], "pending")  # crosses the threshold
    assert index.wait_for_rebuild(timeout=60)  # migration runs in the background by default
    assert index.is_approximate and len(index) == 5000

    _, ids, kinds = index.search(queries, 10)
    assert recall_at(ids, exact_neighbours(queries, base, 10)) >= 0.95
    assert set(kinds.ravel().tolist()) == {"labelled", "pending"}

    # Removal from HNSW: the removed ids never come back, recall on the rest holds.
    removed = np.arange(0, 5000, 7)
    index.remove(removed)
    assert len(index) == 5000 - removed.size
    _, ids, _ = index.search(queries, 10)
    assert not set(ids.ravel().tolist()) & set(removed.tolist())
    keep = np.setdiff1d(np.arange(5000), removed)
    expected = keep[exact_neighbours(queries, base[keep], 10)]
    assert recall_at(ids, expected) >= 0.95


def test_hnsw_compacts_once_tombstones_pile_up() -> None:
    vectors = clustered_vectors(2600, 32, clusters=20, seed=6)
    index = VectorIndex(
        32, hnsw_threshold=2000, tombstone_rebuild_fraction=0.2, background_rebuild=False
    )
    index.add(np.arange(2600), vectors, "labelled")
    assert index.is_approximate
    index.remove(np.arange(500))  # 500 / 2600 < 0.2: tombstones only
    assert index._index.ntotal == 2600
    index.remove(np.arange(500, 700))  # 700 / 2600 > 0.2: rebuilt without them
    assert index._index.ntotal == 1900 and len(index) == 1900
    _, ids, _ = index.search(vectors[:50], 5)
    assert ids.min() >= 700


def test_input_validation() -> None:
    index = VectorIndex(8)
    with pytest.raises(DimensionMismatch):
        index.add([1], np.ones((1, 9)), "labelled")
    with pytest.raises(DimensionMismatch):
        index.search(np.ones(8), 1)
    with pytest.raises(InvalidArray):
        index.add([1, 2], np.ones((1, 8)), "labelled")
    with pytest.raises(InvalidArray):
        index.add([1], np.full((1, 8), np.nan), "labelled")
    with pytest.raises(UnknownKind):
        index.add([1], np.ones((1, 8)), "annotated")  # type: ignore[arg-type]
    with pytest.raises(InvalidArray):
        index.search(np.ones((1, 8)), 0)


def test_concurrent_adds_and_searches_through_hnsw_migration() -> None:
    dim = 32
    vectors = clustered_vectors(3000, dim, clusters=20, seed=7)
    index = VectorIndex(dim, hnsw_threshold=1500)
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for start in range(0, 3000, 100):
                index.add(np.arange(start, start + 100), vectors[start : start + 100], "labelled")
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)
        finally:
            done.set()

    def reader() -> None:
        try:
            while not done.is_set():
                similarities, ids, _ = index.search(vectors[:4], 3)
                found = ids[ids >= 0]
                assert found.max(initial=0) < 3000
                assert np.all(similarities[ids >= 0] <= 1.0 + 1e-4)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "deadlock or runaway thread"
    assert not errors, errors
    assert index.wait_for_rebuild(timeout=max(0.0, deadline - time.monotonic()))
    assert len(index) == 3000 and index.is_approximate
    _, ids, _ = index.search(vectors[2990:3000], 1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(2990, 3000))


def test_writes_during_a_rebuild_are_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    vectors = clustered_vectors(2400, 32, clusters=20, seed=8)
    index = VectorIndex(32, hnsw_threshold=2000, background_rebuild=False)
    index.add(np.arange(1990), vectors[:1990], "labelled")
    build_new_index = index._new_hnsw

    def build_while_others_write():  # runs outside the lock, as concurrent writers would
        index.add(np.arange(2100, 2400), vectors[2100:2400], "pending")
        index.remove([5, 6])
        similarities, ids, _ = index.search(vectors[2100:2101], 1)  # still served meanwhile
        assert ids[0, 0] == 2100 and similarities[0, 0] == pytest.approx(1.0, abs=1e-5)
        return build_new_index()

    monkeypatch.setattr(index, "_new_hnsw", build_while_others_write)
    index.add(np.arange(1990, 2100), vectors[1990:2100], "labelled")  # triggers migration
    assert index.is_approximate
    assert len(index) == 2400 - 2
    _, ids, kinds = index.search(vectors[[5, 6, 2200, 2399]], 1)
    assert ids[0, 0] != 5 and ids[1, 0] != 6
    assert ids[2:, 0].tolist() == [2200, 2399] and kinds[2:, 0].tolist() == ["pending"] * 2


def test_search_limits_openmp_threads_only_for_the_call() -> None:
    import faiss

    index = VectorIndex(8, search_threads=1)
    index.add([1], np.ones((1, 8)), "labelled")
    before = faiss.omp_get_max_threads()
    index.search(np.ones((1, 8)), 1)
    assert faiss.omp_get_max_threads() == before
    with pytest.raises(ValueError):
        VectorIndex(8, search_threads=0)


def test_background_migration_keeps_serving_and_loses_no_write() -> None:
    vectors = clustered_vectors(2600, 32, clusters=20, seed=10)
    index = VectorIndex(32, hnsw_threshold=2000)
    index.add(np.arange(2100), vectors[:2100], "labelled")  # returns before the migration ends
    index.add(np.arange(2100, 2600), vectors[2100:], "pending")  # exact or logged + replayed
    index.remove([0, 1, 2])
    _, ids, _ = index.search(vectors[2599:2600], 1)
    assert ids[0, 0] == 2599  # served throughout, whichever index answers
    assert index.wait_for_rebuild(timeout=60)
    assert index.is_approximate and not index.is_rebuilding and len(index) == 2597
    _, ids, kinds = index.search(vectors[[0, 1, 2, 2300, 2599]], 1)
    assert not {0, 1, 2} & set(ids[:3, 0].tolist())
    assert ids[3:, 0].tolist() == [2300, 2599] and kinds[3:, 0].tolist() == ["pending"] * 2

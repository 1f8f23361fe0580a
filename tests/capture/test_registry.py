from __future__ import annotations

import numpy as np
import pytest

from capture import DimensionMismatch, IndexRegistry, VectorIndex

from .conftest import clustered_vectors


def test_get_or_create_returns_one_index_per_function() -> None:
    registry = IndexRegistry()
    first = registry.get_or_create("fn_a", 16)
    assert registry.get_or_create("fn_a", 16) is first
    assert registry.get_or_create("fn_b", 16) is not first
    assert registry.get("fn_c") is None
    with pytest.raises(DimensionMismatch, match="pins one backbone"):
        registry.get_or_create("fn_a", 32)


def test_drop_forgets_the_index() -> None:
    registry = IndexRegistry()
    registry.get_or_create("fn", 8).add([1], np.ones((1, 8)), "labelled")
    assert registry.drop("fn") and not registry.drop("fn")
    assert len(registry.get_or_create("fn", 8)) == 0


def test_rebuild_loads_items_and_swaps_in_a_new_index() -> None:
    registry = IndexRegistry(make_index=lambda dim: VectorIndex(dim, hnsw_threshold=2000))
    old = registry.get_or_create("fn", 32)
    old.add([999], np.ones((1, 32)), "labelled")
    vectors = clustered_vectors(5000, 32, clusters=20, seed=9)
    items = (
        (item_id, vectors[item_id], "labelled" if item_id % 3 else "pending")
        for item_id in range(5000)
    )
    index = registry.rebuild("fn", 32, items)
    assert registry.get("fn") is index and index is not old
    assert len(index) == 5000 and index.is_approximate
    _, ids, kinds = index.search(vectors[[3, 4]], 1)
    assert ids[:, 0].tolist() == [3, 4] and kinds[:, 0].tolist() == ["pending", "labelled"]
    # A rebuild may change the dimension (the function was re-pinned to another backbone).
    assert registry.rebuild("fn", 16, []).dim == 16
    assert registry.get_or_create("fn", 16) is registry.get("fn")

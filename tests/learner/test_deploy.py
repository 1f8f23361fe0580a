"""Deployed heads: atomic swaps under concurrent readers, and ranked predictions."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from learner import Deployed, DeployedHeads, ranked_predictions


class VersionedHead:
    """A fake head whose every attribute is derived from the version it was built for."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.classes_ = np.array([f"label{version}", "other"], dtype=object)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.tile([0.75, 0.25], (len(X), 1))


def test_get_swap_remove() -> None:
    heads = DeployedHeads()
    assert heads.get("fn") is None
    first = Deployed.of(1, VersionedHead(1))
    assert first.labels == ("label1", "other")
    assert heads.swap("fn", first) is None
    second = Deployed(version=2, head=VersionedHead(2), labels=["label2", "other"])
    assert second.labels == ("label2", "other")
    assert heads.swap("fn", second) is first
    assert heads.get("fn") is second
    assert heads.snapshot() == {"fn": second}
    assert heads.remove("fn") is second
    assert heads.get("fn") is None
    assert heads.remove("fn") is None


def test_concurrent_readers_always_see_a_consistent_model() -> None:
    heads = DeployedHeads()
    heads.swap("fn", Deployed.of(0, VersionedHead(0)))
    n_swaps, n_readers = 3000, 4
    all_reading = threading.Barrier(n_readers + 1, timeout=10)
    done = threading.Event()
    problems: list[str] = []
    seen_versions: list[set[int]] = [set() for _ in range(n_readers)]

    def read(reader: int) -> None:
        last = -1
        all_reading.wait()
        while not done.is_set():
            deployed = heads.get("fn")
            if deployed is None:
                problems.append("model disappeared")
                return
            if deployed.head.version != deployed.version:
                problems.append(f"version {deployed.version} with head {deployed.head.version}")
            if deployed.labels[0] != f"label{deployed.version}":
                problems.append(f"version {deployed.version} with labels {deployed.labels}")
            if deployed.version < last:
                problems.append(f"went back from {last} to {deployed.version}")
            last = deployed.version
            seen_versions[reader].add(deployed.version)

    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often so reads really interleave with swaps
    try:
        readers = [threading.Thread(target=read, args=(i,)) for i in range(n_readers)]
        for thread in readers:
            thread.start()
        all_reading.wait()
        for version in range(1, n_swaps + 1):
            heads.swap("fn", Deployed.of(version, VersionedHead(version)))
        done.set()
        deadline = time.monotonic() + 10
        for thread in readers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            assert not thread.is_alive()
    finally:
        sys.setswitchinterval(previous_interval)

    assert problems == []
    latest = heads.get("fn")
    assert latest is not None and latest.version == n_swaps
    assert len(set().union(*seen_versions)) > 1  # readers really ran during the swaps


def test_ranked_predictions_are_sorted_by_confidence() -> None:
    class Head:
        classes_ = np.array(["cat", "dog", "fox"])

        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            return np.array([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2]])

    ranked = ranked_predictions(Head(), np.zeros((2, 4)))
    assert ranked[0] == [("dog", 0.5), ("fox", 0.3), ("cat", 0.2)]
    assert ranked[1] == [("cat", 0.6), ("dog", 0.2), ("fox", 0.2)]  # ties keep class order
    assert ranked_predictions(Head(), np.zeros((2, 4)), top_k=1) == [[("dog", 0.5)], [("cat", 0.6)]]
    assert all(isinstance(prob, float) for row in ranked for _, prob in row)


def test_deployed_is_immutable() -> None:
    deployed = Deployed.of(1, VersionedHead(1))
    with pytest.raises(AttributeError):
        deployed.version = 2  # type: ignore[misc]

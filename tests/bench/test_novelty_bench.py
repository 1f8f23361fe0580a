"""B7's streaming proposal logic on synthetic vectors (the real run embeds Fashion-MNIST)."""

from __future__ import annotations

import numpy as np

from bench.novelty import (
    first_proposed,
    knn_distance,
    stream_proposals,
    stream_with_reviewer,
    streamed_novelty,
)
from capture import CapturePolicy
from capture.novelty import NoveltyModel
from capture.proposals import class_spread


def _blob(centre: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    points = centre + 0.4 * rng.standard_normal((n, centre.shape[0])) / np.sqrt(centre.shape[0])
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def test_an_unseen_class_is_proposed_and_seen_traffic_is_not() -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 24))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    names = np.asarray(["a", "b", "c", "new"])
    labelled = np.concatenate([_blob(centres[i], 80, rng) for i in range(3)])
    labels = np.repeat(names[:3], 80)
    traffic_labels = rng.permutation(np.repeat(names, 100))
    traffic = np.stack([_blob(centres[names == n][0], 1, rng)[0] for n in traffic_labels])

    model = NoveltyModel(labelled, labels, components=12)
    novelty = model.score(traffic)
    policy = CapturePolicy(proposal_min_size=8)
    spread = class_spread(labelled, labels)
    means = {str(n): labelled[labels == n].mean(axis=0) for n in names[:3]}
    snapshots = stream_proposals(traffic, traffic_labels, novelty, policy, spread, means, 10)
    after = first_proposed(snapshots, traffic_labels, "new")
    assert after is not None and after < 60
    assert first_proposed(snapshots, traffic_labels, "a") is None

    seen = traffic_labels != "new"
    quiet = stream_proposals(
        traffic[seen], traffic_labels[seen], novelty[seen], policy, spread, means, 10
    )
    assert max(len(proposals) for _, proposals in quiet) == 0
    unseen = knn_distance(traffic[~seen], labelled).mean()
    assert unseen > knn_distance(traffic[seen], labelled).mean()


def test_a_reviewer_accepting_proposals_lets_the_next_class_through() -> None:
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((5, 24))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    names = np.asarray(["a", "b", "c", "new", "newer"])
    labelled = np.concatenate([_blob(centres[i], 80, rng) for i in range(3)])
    labels = np.repeat(names[:3], 80)
    traffic_labels = rng.permutation(np.repeat(names, 120))
    traffic = np.stack([_blob(centres[names == n][0], 1, rng)[0] for n in traffic_labels])
    policy = CapturePolicy(proposal_min_size=8)
    after = stream_with_reviewer(
        labelled, labels, traffic, traffic_labels, ("new", "newer"), policy, 20, seed=0
    )
    assert set(after) == {"new", "newer"}
    assert all(v is not None and v < 80 for v in after.values()), after
    # scored as invokes are: relative to the traffic before each one, in [0, 1]
    model = NoveltyModel(labelled, labels, components=12)
    novelty = streamed_novelty(model, traffic)
    assert novelty.shape == (len(traffic),) and 0.0 <= novelty.min() <= novelty.max() <= 1.0
    is_new = np.isin(traffic_labels, ["new", "newer"])
    assert novelty[is_new].mean() > novelty[~is_new].mean() + 0.3


def test_invoke_cost_times_both_paths() -> None:
    from types import SimpleNamespace

    from bench.novelty import invoke_cost

    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((4000, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    labels = np.asarray(["a", "b"])[rng.integers(0, 2, 4000)]
    data = SimpleNamespace(
        pool=SimpleNamespace(vectors=vectors, labels=labels),
        val=SimpleNamespace(vectors=vectors[:20]),
    )
    cost = invoke_cost(data, calls=20)
    assert set(cost) == {"labelled_only_ms", "with_window_ms", "recalibration_ms"}
    assert all(v > 0 for v in cost.values())

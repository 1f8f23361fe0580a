from __future__ import annotations

import numpy as np
import pytest

from capture import CaptureController, CaptureDecision, CapturePolicy, VectorIndex
from capture.coverage import TrafficClusters, coverage_weight, weighted_score

PLENTY = {"a": 1000, "b": 1000}


def test_weighted_score_scales_odds_and_stays_below_one() -> None:
    scores = np.linspace(0.0, 0.999, 50)
    for weight in (0.2, 1.0, 5.0, 1000.0):
        weighted = np.array([weighted_score(float(s), weight) for s in scores])
        assert np.all(np.diff(weighted) > 0) or weight == 0  # order within a region is kept
        assert np.all((weighted >= 0.0) & (weighted < 1.0))
    assert weighted_score(0.5, 3.0) == pytest.approx(0.75)  # odds 1 -> 3
    assert weighted_score(0.3, 1.0) == pytest.approx(0.3)
    assert weighted_score(1.0, 0.1) == 1.0


def test_coverage_weight_favours_regions_with_fewer_captures() -> None:
    assert coverage_weight(0, 4.0, 1.0) == pytest.approx(5.0)
    assert coverage_weight(4, 4.0, 1.0) == pytest.approx(1.0)
    assert coverage_weight(9, 4.0, 1.0) == pytest.approx(0.5)
    assert coverage_weight(9, 4.0, 0.0) == 1.0


def test_online_clusters_find_separated_groups_and_count_captures() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:4]
    members = rng.integers(0, 4, 400)
    points = centres[members] + 0.05 * rng.standard_normal((400, 8))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    clusters = TrafficClusters(4, 8)
    # seed with one input per group, then every input must land with its own group
    first = [int(np.flatnonzero(members == g)[0]) for g in range(4)]
    for i in first:
        clusters.assign(points[i])
    assert clusters.seeded == 4
    assigned = np.array([clusters.assign(p) for p in points])
    for group in range(4):
        assert len(set(assigned[members == group])) == 1
    assert len(set(assigned)) == 4
    busy, idle = int(assigned[0]), int(assigned[members != members[0]][0])
    for _ in range(6):
        clusters.count_capture(busy)
    assert clusters.weight(busy, 1.0) < 1.0 < clusters.weight(idle, 1.0)
    clusters.uncount_capture(busy)
    assert clusters.weight(busy, 1.0) == pytest.approx((1 + 5 / 4) / (1 + 5))


def _two_region_stream(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Region 0 is always a bit more uncertain than region 1 (margin ~0.9 vs ~0.7)."""
    rng = np.random.default_rng(seed)
    region = rng.integers(0, 2, n)
    centres = np.eye(16)[:2]
    vectors = centres[region] + 0.1 * rng.standard_normal((n, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    top = np.where(region == 0, 0.55, 0.65) + 0.02 * rng.standard_normal(n)
    proba = np.stack([top, 1 - top], axis=1)
    return vectors.astype(np.float32), proba, region


def _decisions(
    strength: float, clusters: int, memory: int = 0, confident: float | None = None
) -> list[CaptureDecision]:
    """Decisions on :func:`_two_region_stream`; ``confident`` replaces region 1's top
    probability (a region the head already handles)."""
    vectors, proba, region = _two_region_stream(3000, seed=5)
    if confident is not None:
        proba[region == 1] = [confident, 1.0 - confident]
    policy = CapturePolicy(
        target_rate=0.1,
        random_rate=0.0,
        max_per_hour=10**6,
        max_per_day=10**6,
        coverage_clusters=clusters,
        coverage_strength=strength,
        coverage_memory=memory,
        novelty_weight=0.0,
        rare_class_boost=0.0,
    )
    controller = CaptureController(policy, rng=np.random.default_rng(0))
    index = VectorIndex(16)
    return [
        controller.decide(p, ["a", "b"], v, index, PLENTY)
        for p, v in zip(proba, vectors, strict=True)
    ]


def _captured_regions(strength: float, clusters: int) -> np.ndarray:
    _, _, region = _two_region_stream(3000, seed=5)
    taken = [d.captured for d in _decisions(strength, clusters)]
    return region[np.asarray(taken)]


def test_balancing_spreads_captures_over_regions_of_traffic() -> None:
    plain = _captured_regions(strength=0.0, clusters=0)
    balanced = _captured_regions(strength=1.0, clusters=2)
    assert np.mean(plain == 1) < 0.05  # margin alone takes only the more uncertain region
    assert np.mean(balanced == 1) > 0.15  # balancing gives the other region a real share
    assert abs(len(balanced) - 300) < 60  # and the capture rate still tracks the target


def test_old_captures_fade_from_the_balance_with_a_memory() -> None:
    def clusters_after(captures: list[int], memory: int) -> TrafficClusters:
        clusters = TrafficClusters(2, 2)
        clusters.assign(np.array([1.0, 0.0]))
        clusters.assign(np.array([0.0, 1.0]))
        for region in captures:
            clusters.count_capture(region, memory)
        return clusters

    first_region_0 = [0] * 50
    faded = clusters_after(first_region_0, memory=10)
    assert faded.weight(0, 1.0) < 1.0 < faded.weight(1, 1.0)
    faded = clusters_after(first_region_0 + [1] * 50, memory=10)
    # region 0's captures are 50 captures old, e^-5 of their weight: region 1 is the busy one now
    assert faded.weight(1, 1.0) < 1.0 < faded.weight(0, 1.0)
    recent = (1 - np.exp(-5.0)) / (1 - np.exp(-0.1))  # 50 captures, each e^-0.1 of the next
    kept = np.exp(-5.0) * recent
    assert faded.weight(0, 1.0) == pytest.approx((1 + (kept + recent) / 2) / (1 + kept))
    all_time = clusters_after(first_region_0 + [1] * 50, memory=0)
    assert all_time.weight(0, 1.0) == pytest.approx(1.0)  # without a memory: all-time counts


def test_a_memory_stops_balancing_from_pulling_in_a_region_the_head_handles() -> None:
    # Region 1 is predicted at 0.9. With all-time counts its weight grows with every capture
    # in region 0 until it lifts confident inputs; with a memory of 10 captures the counts it
    # is weighed against sum to at most 1 / (1 - e^-0.1) = 10.5, so its weight stays <= 6.25.
    _, _, region = _two_region_stream(3000, seed=5)

    def region_1(memory: int) -> tuple[int, float]:
        decisions = _decisions(1.0, clusters=2, memory=memory, confident=0.9)
        in_region_1 = [d for d, r in zip(decisions, region, strict=True) if r == 1]
        return sum(d.captured for d in in_region_1), max(d.coverage_weight for d in in_region_1)

    lifted, weight = region_1(memory=0)
    assert lifted >= 3 and weight > 20
    lifted, weight = region_1(memory=10)
    assert lifted == 0 and 3 < weight <= 1 + 0.5 / (1 - np.exp(-0.1))


def test_maximal_scores_never_stall_capture() -> None:
    # Every prediction is a rare class and the boost takes every score to exactly 1: the
    # quantile threshold becomes 1, yet inputs keep being captured.
    policy = CapturePolicy(
        random_rate=0.0,
        max_per_hour=10**6,
        max_per_day=10**6,
        rare_class_boost=1.0,
        coverage_clusters=0,
    )
    controller = CaptureController(policy, rng=np.random.default_rng(0))
    index = VectorIndex(4)
    rng = np.random.default_rng(1)
    decisions = [
        controller.decide([0.9, 0.1], ["a", "b"], rng.standard_normal(4), index, {})
        for _ in range(200)
    ]
    assert decisions[-1].threshold == 1.0
    assert all(d.captured for d in decisions[100:])


def test_policy_update_resets_regions_only_when_their_number_changes() -> None:
    controller = CaptureController(CapturePolicy(coverage_clusters=3), rng=np.random.default_rng(0))
    index = VectorIndex(4)
    first = controller.decide([0.5, 0.5], ["a", "b"], [1, 0, 0, 0], index, PLENTY)
    assert first.region == 0
    controller.update_policy(CapturePolicy(coverage_clusters=3, coverage_strength=2.0))
    assert controller.decide([0.5, 0.5], ["a", "b"], [0, 1, 0, 0], index, PLENTY).region == 1
    controller.update_policy(CapturePolicy(coverage_clusters=4))
    assert controller.decide([0.5, 0.5], ["a", "b"], [0, 0, 1, 0], index, PLENTY).region == 0
    controller.update_policy(CapturePolicy(coverage_clusters=0))
    off = controller.decide([0.5, 0.5], ["a", "b"], [0, 0, 1, 0], index, PLENTY)
    assert off.region is None and off.coverage_weight == 1.0

"""Cold-start capture: typical members of uncovered regions of traffic, before any head."""

from __future__ import annotations

import numpy as np

from capture import CaptureController, CapturePolicy, VectorIndex, add_pending
from capture.cold_start import ColdStartSelector

DIM = 32


def blobs(n: int, *, sizes: tuple[float, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors in well separated blobs drawn with the given shares, plus 2% far outliers
    (blob -1); returns vectors and blob ids."""
    rng = np.random.default_rng(seed)
    centres = np.eye(DIM)[: len(sizes)]
    blob = rng.choice(len(sizes), n, p=np.asarray(sizes) / sum(sizes))
    vectors = centres[blob] + 0.35 * rng.standard_normal((n, DIM)) / np.sqrt(DIM)
    outliers = rng.random(n) < 0.02
    vectors[outliers] = rng.standard_normal((int(outliers.sum()), DIM))
    blob[outliers] = -1
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), blob


def controller(**settings: object) -> CaptureController:
    policy = CapturePolicy(
        **{"max_per_hour": 10_000, "max_per_day": 10_000, "random_rate": 0.0, **settings}
    )
    return CaptureController(policy, rng=np.random.default_rng(0))


Decided = tuple[int, str | None, str, float]


def stream(control: CaptureController, vectors: np.ndarray) -> list[Decided]:
    """Every input through decide_cold_start; captures are committed and indexed as pending.
    Returns (position, reason, skipped_because, typicality percentile) per input."""
    index = VectorIndex(DIM, background_rebuild=False)
    out = []
    for position, vector in enumerate(vectors):
        decision = control.decide_cold_start(vector, index)
        out.append((position, decision.reason, str(decision.skipped_because), decision.score))
        if decision.captured:
            control.commit(decision)
            add_pending(index, position, vector)
    return out


def test_nothing_is_captured_while_the_reservoir_warms_up() -> None:
    vectors, _ = blobs(150, sizes=(1, 1, 1))
    decisions = stream(controller(), vectors)
    assert all(reason is None and skip == "warming_up" for _, reason, skip, _ in decisions[:100])
    assert any(reason == "cold_start" for _, reason, _, _ in decisions[100:])


def test_first_captures_cover_the_regions_of_traffic_with_typical_members() -> None:
    vectors, blob = blobs(1500, sizes=(8, 4, 2, 1, 1), seed=3)
    decisions = stream(controller(), vectors)
    captured = [position for position, reason, _, _ in decisions if reason == "cold_start"]
    assert len(set(blob[captured[:8]])) >= 4  # diverse: the first picks cover the blobs
    assert -1 not in blob[captured]  # never an outlier
    # typical: captures sit in the densest part of the traffic seen so far
    typicality = np.array([score for _, reason, _, score in decisions if reason == "cold_start"])
    judged = np.array([score for *_, skip, score in decisions if skip != "warming_up"])
    assert np.median(typicality) > 0.6 > np.median(judged)


def test_a_region_covered_by_labelled_items_is_not_captured_from() -> None:
    vectors, blob = blobs(1200, sizes=(1, 1), seed=5)
    index = VectorIndex(DIM, background_rebuild=False)
    labelled = np.flatnonzero(blob == 0)[:20]
    index.add(labelled + 10_000, vectors[labelled], "labelled")
    control = controller()
    taken = []
    for position, vector in enumerate(vectors):
        decision = control.decide_cold_start(vector, index)
        if decision.captured:
            control.commit(decision)
            add_pending(index, position, vector)
            taken.append(position)
    assert taken and blob[taken[0]] == 1  # the uncovered blob is asked about first
    assert np.mean(blob[taken] == 1) > 0.5


def test_duplicates_random_slice_and_budgets_apply() -> None:
    vectors, _ = blobs(400, sizes=(1, 1, 1), seed=7)
    limited = stream(controller(max_per_hour=3, max_per_day=10), vectors)
    assert sum(reason is not None for _, reason, _, _ in limited) == 3
    assert any(skip == "budget_hour" for _, _, skip, _ in limited)
    everything_random = stream(controller(random_rate=1.0), vectors[:50])
    assert {reason for _, reason, _, _ in everything_random} == {"random"}
    control = controller()
    index = VectorIndex(DIM, background_rebuild=False)
    index.add([1], vectors[:1], "labelled")
    assert control.decide_cold_start(vectors[0], index).skipped_because == "duplicate"


def test_the_decision_has_no_label_and_records_typicality() -> None:
    vectors, _ = blobs(300, sizes=(1, 1), seed=9)
    control = controller()
    index = VectorIndex(DIM, background_rebuild=False)
    decisions = [control.decide_cold_start(v, index) for v in vectors]
    assert all(d.predicted_label is None for d in decisions)
    assert all(0.0 <= d.score <= 1.0 for d in decisions)
    assert decisions[-1].to_dict()["predicted_label"] is None


def test_selector_reservoir_is_bounded() -> None:
    selector = ColdStartSelector(DIM, reservoir_size=64, min_traffic=32)
    index = VectorIndex(DIM, background_rebuild=False)
    vectors, _ = blobs(300, sizes=(1, 1), seed=2)
    for vector in vectors:
        selector.judge(vector, index)
    assert selector.filled == 64

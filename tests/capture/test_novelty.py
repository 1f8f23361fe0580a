"""Calibrated novelty, new-class clustering, the drift counter and the per-function models."""

from __future__ import annotations

import numpy as np
import pytest

from capture import CapturePolicy, InvalidPolicy
from capture.drift import HOUR, NoveltyTraffic, TrafficTotals
from capture.errors import InvalidArray
from capture.novelty import NoveltyModel
from capture.novelty_models import NoveltyModels
from capture.proposals import class_spread, cluster_novel_items, mean_pairwise_distance

DIM = 32


def blobs(centres: np.ndarray, per: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = np.repeat(centres, per, axis=0) + spread * rng.standard_normal(
        (len(centres) * per, centres.shape[1])
    ) / np.sqrt(centres.shape[1])
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def centres(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((n, DIM))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def labelled() -> tuple[np.ndarray, list[str], np.ndarray]:
    known = centres(5, seed=1)
    vectors = blobs(known, 60, 0.5, seed=2)
    names = [f"c{i}" for i in range(5) for _ in range(60)]
    return vectors, names, known


def test_in_distribution_novelty_is_roughly_uniform(labelled) -> None:
    vectors, names, known = labelled
    model = NoveltyModel(vectors, names, components=16)
    fresh = model.score(blobs(known, 200, 0.5, seed=3))
    assert fresh.min() >= 0.0 and fresh.max() <= 1.0
    # calibrated: the share above a threshold is about one minus the threshold
    assert 0.05 <= float(np.mean(fresh > 0.9)) <= 0.2
    assert 0.35 <= float(np.median(fresh)) <= 0.65


def test_unseen_class_scores_high_far_or_between(labelled) -> None:
    vectors, names, known = labelled
    model = NoveltyModel(vectors, names, components=16)
    far = model.score(blobs(centres(1, seed=9), 100, 0.5, seed=4))
    assert float(np.mean(far > 0.99)) > 0.9
    between = known[0] + known[1]
    halfway = model.score(blobs(between[None, :] / np.linalg.norm(between), 100, 0.3, seed=5))
    assert float(np.median(halfway)) > 0.9


def test_two_labels_score_both_classes_alike() -> None:
    """With two labels the regression has one logit; neither class may look novel for it."""
    known = centres(2, seed=11)
    names = ["a"] * 60 + ["b"] * 60
    model = NoveltyModel(blobs(known, 60, 0.5, seed=12), names, components=16)
    fresh = model.score(blobs(known, 200, 0.5, seed=13))
    first, second = fresh[:200], fresh[200:]
    assert abs(float(np.median(first)) - float(np.median(second))) < 0.2
    assert float(np.mean(fresh > 0.99)) < 0.05
    far = model.score(blobs(centres(1, seed=14), 50, 0.5, seed=15))
    assert float(np.median(far)) > 0.9


def test_calibration_means_the_same_at_another_scale(labelled) -> None:
    """A tighter backbone (smaller spread everywhere) gives the same calibrated shares."""
    vectors, names, known = labelled
    loose = NoveltyModel(vectors, names, components=16)
    tight = NoveltyModel(blobs(known, 60, 0.2, seed=2), names, components=16)
    loose_rate = np.mean(loose.score(blobs(known, 200, 0.5, seed=6)) > 0.9)
    tight_rate = np.mean(tight.score(blobs(known, 200, 0.2, seed=6)) > 0.9)
    assert abs(loose_rate - tight_rate) < 0.08


def test_model_refuses_too_little_or_bad_data(labelled) -> None:
    vectors, names, _ = labelled
    with pytest.raises(InvalidArray):
        NoveltyModel(vectors[:5], names[:5])
    with pytest.raises(InvalidArray):
        NoveltyModel(vectors[:50], ["one"] * 50)
    with pytest.raises(InvalidArray):
        NoveltyModel(vectors, names[:-1])
    model = NoveltyModel(vectors, names, components=8)
    with pytest.raises(InvalidArray):
        model.score(np.ones((1, DIM + 1)))
    assert model.dim == DIM and model.size == len(names)
    assert set(model.class_means) == set(names) and model.class_spread > 0


def test_clusters_tight_groups_of_enough_items_only() -> None:
    tight = blobs(centres(2, seed=11), 12, 0.3, seed=12)
    scattered = blobs(centres(15, seed=13), 1, 0.3, seed=14)
    vectors = np.concatenate([tight, scattered])
    ids = [f"item_{i:03d}" for i in range(len(vectors))]
    spread = mean_pairwise_distance(blobs(centres(1, seed=15), 50, 0.3, seed=16))
    proposals = cluster_novel_items(ids, vectors, max_distance=1.5 * spread, min_size=8)
    assert sorted(p.item_ids for p in proposals) == [ids[:12], ids[12:24]]
    assert proposals[0].id != proposals[1].id
    assert all(p.spread <= 1.5 * spread for p in proposals)
    # a stricter minimum size leaves nothing; so does a looser one on scattered points only
    assert cluster_novel_items(ids, vectors, max_distance=1.5 * spread, min_size=13) == []
    assert cluster_novel_items(ids[24:], scattered, max_distance=1.5 * spread, min_size=3) == []


def test_proposal_id_is_stable_while_the_cluster_grows() -> None:
    group = blobs(centres(1, seed=21), 20, 0.3, seed=22)
    ids = [f"item_{i:03d}" for i in range(20)]
    spread = mean_pairwise_distance(group)
    (early,) = cluster_novel_items(ids[:10], group[:10], max_distance=1.5 * spread, min_size=5)
    (later,) = cluster_novel_items(ids, group, max_distance=1.5 * spread, min_size=5)
    assert early.id == later.id and later.size == 20
    (after_first_left,) = cluster_novel_items(
        ids[1:], group[1:], max_distance=1.5 * spread, min_size=5
    )
    assert after_first_left.id != early.id


def test_nearest_label_and_class_spread(labelled) -> None:
    vectors, names, known = labelled
    spread = class_spread(vectors, names)
    assert spread == pytest.approx(mean_pairwise_distance(vectors[:60]), rel=0.3)
    near_c2 = blobs(known[2:3] * 0.6 + centres(1, seed=31) * 0.4, 10, 0.2, seed=32)
    means = {n: vectors[np.asarray(names) == n].mean(axis=0) for n in set(names)}
    (proposal,) = cluster_novel_items(
        [str(i) for i in range(10)], near_c2, max_distance=spread, min_size=5, class_means=means
    )
    assert proposal.nearest_label == "c2" and 0 < proposal.nearest_similarity <= 1
    assert np.isnan(class_spread(vectors[:1], names[:1]))


def test_drift_counts_novel_share_per_hour() -> None:
    now = [10 * HOUR + 5.0]
    traffic = NoveltyTraffic(keep_hours=3, clock=lambda: now[0])
    for novel in (True, False, False, False):
        traffic.record("f", novel=novel)
    assert traffic.current_share("f") == 0.25
    now[0] += HOUR
    traffic.record("f", novel=True)
    hours = traffic.hours("f")
    assert [(h.start, h.invokes, h.scored, h.novel) for h in hours] == [
        (10 * HOUR, 4, 4, 1),
        (11 * HOUR, 1, 1, 1),
    ]
    assert traffic.current_share("f") == 1.0
    assert traffic.totals() == {"f": TrafficTotals(invokes=5, scored=5, novel=2)}
    now[0] += 5 * HOUR
    traffic.record("f", novel=False)
    assert [h.start for h in traffic.hours("f")] == [16 * HOUR]  # older hours forgotten
    assert traffic.current_share("other") is None
    traffic.drop("f")
    assert traffic.hours("f") == [] and traffic.totals() == {}


def test_unscored_invokes_count_as_invokes_but_not_in_the_novel_share() -> None:
    now = [10 * HOUR + 5.0]
    traffic = NoveltyTraffic(clock=lambda: now[0])
    for _ in range(3):  # before the function had a novelty model
        traffic.record("f", novel=None)
    assert traffic.current_share("f") is None
    (hour,) = traffic.hours("f")
    assert (hour.invokes, hour.scored, hour.novel, hour.novel_share) == (3, 0, 0, None)
    traffic.record("f", novel=True)
    traffic.record("f", novel=False)
    (hour,) = traffic.hours("f")
    assert (hour.invokes, hour.scored, hour.novel, hour.novel_share) == (5, 2, 1, 0.5)
    assert traffic.current_share("f") == 0.5
    assert traffic.totals() == {"f": TrafficTotals(invokes=5, scored=2, novel=1)}


def test_models_refit_when_labels_move_on_at_most_so_often(labelled) -> None:
    vectors, names, _ = labelled
    now = [0.0]
    fits: list[int] = []
    registry = NoveltyModels(min_refit_seconds=30, clock=lambda: now[0])

    def build() -> NoveltyModel:
        fits.append(1)
        return NoveltyModel(vectors, names, components=8)

    first = registry.current("f", 1, build)
    assert first is not None and registry.current("f", 1, build) is first and len(fits) == 1
    assert registry.current("f", 2, build) is first  # too soon after the last fit
    now[0] += 31
    assert registry.current("f", 2, build) is not first and len(fits) == 2
    registry.invalidate("f")
    registry.current("f", 2, build)
    assert len(fits) == 3
    registry.drop("f")
    assert registry.current("f", 2, lambda: None) is None


def test_policy_validates_novelty_settings() -> None:
    policy = CapturePolicy.from_dict(
        {"novelty_threshold": 0.95, "proposal_min_size": 5, "proposal_tightness": 1.5}
    )
    assert policy.novelty_threshold == 0.95
    for bad in (
        {"novelty_threshold": 1.5},
        {"proposal_min_size": 1},
        {"proposal_tightness": 0},
        {"novelty_threshold": "high"},
    ):
        with pytest.raises(InvalidPolicy):
            CapturePolicy.from_dict(bad)


def test_large_label_sets_use_a_subset_and_stay_calibrated(labelled, monkeypatch) -> None:
    import capture.novelty as novelty

    vectors, names, known = labelled
    monkeypatch.setattr(novelty, "MAX_REFERENCE", 120)
    monkeypatch.setattr(novelty, "MAX_CALIBRATION", 80)
    model = NoveltyModel(vectors, names, components=16)
    assert model.size == 120
    fresh = model.score(blobs(known, 200, 0.5, seed=7))
    assert 0.03 <= float(np.mean(fresh > 0.9)) <= 0.25
    far = model.score(blobs(centres(1, seed=9), 50, 0.5, seed=8))
    assert float(np.median(far)) > 0.95

"""Novelty relative to a function's recent traffic (capture.traffic.RecentTraffic)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from capture.novelty import MIN_TRAFFIC, NoveltyModel
from capture.novelty_models import NoveltyModels
from capture.traffic import RecentTraffic
from tests.capture.test_novelty import DIM, blobs, centres


@pytest.fixture(scope="module")
def known() -> tuple[np.ndarray, NoveltyModel]:
    means = centres(5, seed=21)
    names = [f"c{i}" for i in range(5) for _ in range(60)]
    return means, NoveltyModel(blobs(means, 60, 0.6, seed=22), names, components=16)


def stream(model: NoveltyModel, vectors: np.ndarray, size: int = 2000) -> np.ndarray:
    window = RecentTraffic(DIM, size=size)
    return np.concatenate([window.score(model, row[None, :]) for row in vectors])


def test_a_look_alike_class_in_the_traffic_stands_out_against_it(known) -> None:
    """A new class close to a known one is hard to tell from the labelled data alone; the
    traffic keeps visiting its region while no label covers it, and that gives it away."""
    means, model = known
    look_alike = means[0] + 0.25 * means[1]
    new = blobs(look_alike[None, :] / np.linalg.norm(look_alike), 150, 0.6, seed=23)
    seen = blobs(means, 120, 0.6, seed=24)
    rng = np.random.default_rng(25)
    order = rng.permutation(len(seen) + len(new))
    traffic = np.concatenate([seen, new])[order]
    is_new = (order >= len(seen)).astype(int)
    relative = roc_auc_score(is_new, stream(model, traffic))
    labelled_only = roc_auc_score(is_new, model.score(traffic))
    assert relative > labelled_only + 0.1, (relative, labelled_only)  # measured 0.93 vs 0.77
    assert relative > 0.85


def test_known_traffic_stays_calibrated_against_the_window(known) -> None:
    means, model = known
    scores = stream(model, blobs(means, 200, 0.6, seed=26))
    warm = scores[MIN_TRAFFIC:]
    assert 0.03 <= float(np.mean(warm > 0.9)) <= 0.2
    assert 0.3 <= float(np.median(warm)) <= 0.7


def test_the_window_is_bounded_and_an_input_never_finds_itself(known) -> None:
    means, model = known
    window = RecentTraffic(DIM, size=150)
    window.add(blobs(means, 40, 0.6, seed=27))  # 200 unscored inputs (no model yet)
    assert window.seen == 200 and window.filled() == 150
    repeated = blobs(centres(1, seed=28), 1, 0.6, seed=29)
    first = window.score(model, repeated)[0]
    # the same input again (a retry) finds its one copy, but repeats do not pile up
    second = window.score(model, repeated)[0]
    assert second >= first
    assert window.score(model, repeated)[0] == second
    assert window.seen == 201
    # below MIN_TRAFFIC inputs the plain distance serves, as without a window
    fresh = RecentTraffic(DIM)
    probe = blobs(means, 2, 0.6, seed=30)
    assert np.allclose(fresh.score(model, probe), model.score(probe))


def test_models_keep_one_window_per_function_dimension_and_space() -> None:
    registry = NoveltyModels()
    window = registry.traffic("f", DIM)
    assert registry.traffic("f", DIM) is window
    assert registry.traffic("g", DIM) is not window
    assert registry.traffic("f", DIM + 1).dim == DIM + 1  # another backbone: a new window
    registry.drop("f")
    assert registry.traffic("f", DIM).seen == 0

    window = registry.traffic("f", DIM)
    window.add(blobs(centres(2, seed=40), 3, 0.6, seed=41))
    tuned = registry.traffic("f", DIM, tag=7)  # the vectors moved to a tuned space
    assert tuned is not window and tuned.seen == 0
    assert registry.window("f") is tuned and registry.traffic("f", DIM, tag=7) is tuned
    assert registry.traffic("f", DIM) is not tuned  # and back: never the old window again


def test_on_join_hands_over_each_input_that_joins_the_window_and_no_repeat(known) -> None:
    """What a sample of the traffic kept elsewhere (the database ring) is fed: the distinct
    inputs, whether scored or only added, each once."""
    _, model = known
    joined: list[tuple[str, np.ndarray]] = []
    models = NoveltyModels(on_join=lambda key, _, rows: joined.append((str(key), rows)))
    window = models.traffic("f", DIM)
    first = blobs(centres(3, seed=30), 2, 0.6, seed=31)  # 6 distinct rows
    window.add(first)
    window.score(model, np.concatenate([first[:2], first[:1] * 3.0]))  # repeats (any length)
    fresh = blobs(centres(1, seed=32), 1, 0.6, seed=33)
    window.score(model, np.concatenate([fresh, fresh]))  # twice in one batch: joins once
    assert [key for key, _ in joined] == ["f", "f"]
    handed = np.concatenate([rows for _, rows in joined])
    assert handed.shape == (7, DIM)
    unit = np.concatenate([first, fresh]) / np.linalg.norm(
        np.concatenate([first, fresh]), axis=1, keepdims=True
    )
    assert np.allclose(handed, unit, atol=1e-6)


def test_on_join_is_told_the_space_of_the_window() -> None:
    tags: list[tuple[str, object]] = []
    models = NoveltyModels(on_join=lambda key, tag, _: tags.append((str(key), tag)))
    models.traffic("f", DIM).add(blobs(centres(1, seed=50), 2, 0.6, seed=51))
    models.traffic("f", DIM, tag=7).add(blobs(centres(1, seed=52), 2, 0.6, seed=53))
    assert tags == [("f", None), ("f", 7)]

"""The augmentation benchmark's bookkeeping: rows of views beside their image, paired gains."""

from __future__ import annotations

import numpy as np

from bench.augmentation import labelled_sets, summarise, training_rows
from bench.data import CLASS_NAMES


def test_each_image_is_followed_by_its_first_k_views() -> None:
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    views = 100 + np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)
    X, y, groups, is_view = training_rows(vectors, views, np.asarray(["a", "b", "a"]), 2)

    assert X.shape == (9, 2)
    np.testing.assert_array_equal(X[0], vectors[0])
    np.testing.assert_array_equal(X[1:3], views[0, :2])
    np.testing.assert_array_equal(X[3], vectors[1])
    assert y.tolist() == ["a"] * 3 + ["b"] * 3 + ["a"] * 3
    assert groups.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert is_view.tolist() == [False, True, True] * 3


def test_smaller_label_sets_are_prefixes_of_one_draw_per_class() -> None:
    labels = np.asarray(CLASS_NAMES * 20)
    sets = labelled_sets(3, labels, 8)

    assert sets.shape == (len(CLASS_NAMES), 8)
    for name, row in zip(CLASS_NAMES, sets, strict=True):
        assert (labels[row] == name).all() and len(set(row.tolist())) == 8
    np.testing.assert_array_equal(sets, labelled_sets(3, labels, 8))


def test_gains_are_paired_per_seed() -> None:
    rows = [
        {"seed": s, "per_class": 2, "k": k, "logistic": base + 0.01 * k, "selected": None}
        for s, base in ((0, 0.5), (1, 0.7))
        for k in (0, 2)
    ]
    (plain, views) = summarise(rows, [2], [2])

    assert plain["k"] == 0 and plain["gain_mean_pt"] == 0.0
    assert views["head"] == "logistic" and views["k"] == 2
    assert abs(views["gain_mean_pt"] - 2.0) < 1e-9 and abs(views["gain_std_pt"]) < 1e-9
    assert views["seeds_better"] == 2 and views["seeds_worse"] == 0
    assert abs(views["accuracy_mean"] - 62.0) < 1e-9

from __future__ import annotations

import numpy as np
import pytest

from capture import (
    InvalidArray,
    entropy_uncertainty,
    informativeness,
    knn_novelty,
    least_confidence,
    margin_uncertainty,
)

from .conftest import random_probabilities

UNCERTAINTY_FUNCTIONS = [margin_uncertainty, entropy_uncertainty, least_confidence]


@pytest.mark.parametrize("uncertainty", UNCERTAINTY_FUNCTIONS)
def test_uniform_is_most_and_one_hot_least_uncertain(uncertainty) -> None:
    uniform = np.full((3, 4), 0.25)
    one_hot = np.eye(4)[[0, 2, 3]]
    np.testing.assert_allclose(uncertainty(uniform), 1.0)
    np.testing.assert_allclose(uncertainty(one_hot), 0.0, atol=1e-12)


@pytest.mark.parametrize("uncertainty", UNCERTAINTY_FUNCTIONS)
def test_scores_are_batch_shaped_and_bounded(uncertainty) -> None:
    proba = random_probabilities(200, 7, seed=3)
    scores = uncertainty(proba)
    assert scores.shape == (200,)
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert scores.std() > 0.05  # not a constant


@pytest.mark.parametrize("uncertainty", UNCERTAINTY_FUNCTIONS)
def test_single_class_is_never_uncertain(uncertainty) -> None:
    np.testing.assert_allclose(uncertainty(np.ones((2, 1))), 0.0)


def test_hand_computed_values() -> None:
    proba = np.array([[0.6, 0.3, 0.1], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(margin_uncertainty(proba), [0.7, 1.0])
    np.testing.assert_allclose(least_confidence(proba), [0.4 / (2 / 3), 0.5 / (2 / 3)])
    expected_entropy = -(0.6 * np.log(0.6) + 0.3 * np.log(0.3) + 0.1 * np.log(0.1)) / np.log(3)
    np.testing.assert_allclose(entropy_uncertainty(proba)[0], expected_entropy)
    np.testing.assert_allclose(entropy_uncertainty(proba)[1], np.log(2) / np.log(3))


def test_margin_orders_by_closeness_of_top_two() -> None:
    proba = np.array([[0.9, 0.1], [0.7, 0.3], [0.55, 0.45]])
    assert list(np.argsort(margin_uncertainty(proba))) == [0, 1, 2]


@pytest.mark.parametrize("bad", [np.array([0.5, 0.5]), np.zeros((2, 0)), [[np.nan, 1.0]]])
def test_uncertainty_rejects_bad_shapes_and_values(bad) -> None:
    with pytest.raises(InvalidArray):
        margin_uncertainty(bad)


def test_knn_novelty_maps_distances_to_unit_interval() -> None:
    cosine = np.array([[0.0, 0.0], [2.0, 2.0], [0.4, 0.6]])
    np.testing.assert_allclose(knn_novelty(cosine), [0.0, 1.0, 0.25])
    squared = np.array([[0.0], [4.0], [1.0]])
    np.testing.assert_allclose(knn_novelty(squared, metric="squared_l2"), [0.0, 1.0, 0.25])


def test_knn_novelty_of_empty_index_is_one_and_missing_neighbours_ignored() -> None:
    np.testing.assert_allclose(knn_novelty(np.zeros((3, 0))), 1.0)
    np.testing.assert_allclose(knn_novelty(np.full((2, 5), np.nan)), 1.0)
    np.testing.assert_allclose(knn_novelty([[0.2, np.nan, np.nan]]), [0.1])


def test_knn_novelty_rejects_bad_input() -> None:
    with pytest.raises(InvalidArray):
        knn_novelty(np.zeros(3))
    with pytest.raises(InvalidArray):
        knn_novelty([[np.inf]])
    with pytest.raises(InvalidArray):
        knn_novelty([[0.1]], metric="manhattan")  # type: ignore[arg-type]


def test_informativeness_keeps_uncertainty_dominant_by_default() -> None:
    # An uncertain but familiar input outranks a confident outlier.
    scores = informativeness(np.array([0.9, 0.1]), np.array([0.05, 1.0]))
    assert scores[0] > scores[1]
    np.testing.assert_allclose(informativeness([1.0], [1.0]), [1.0])
    np.testing.assert_allclose(informativeness([0.0], [0.0]), [0.0])


def test_informativeness_weighting_and_validation() -> None:
    np.testing.assert_allclose(informativeness([0.4], [0.8], novelty_weight=0.5), [0.6])
    np.testing.assert_allclose(informativeness([0.4], [0.8], novelty_weight=0.0), [0.4])
    with pytest.raises(InvalidArray):
        informativeness([0.4], [0.8], novelty_weight=1.5)
    with pytest.raises(InvalidArray):
        informativeness([0.4, 0.1], [0.8])

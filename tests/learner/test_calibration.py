"""Expected calibration error and temperature scaling on toy probability models."""

from __future__ import annotations

import numpy as np
import pytest

from learner import (
    TemperatureScaledHead,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
)


def _calibrated_toy(n: int, n_labels: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits, probabilities and labels drawn *from* those probabilities: calibrated by design."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, n_labels))
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    cumulative = proba.cumsum(axis=1)
    y = (rng.random((n, 1)) > cumulative).sum(axis=1)
    return logits, proba, np.minimum(y, n_labels - 1)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def test_ece_of_a_perfectly_calibrated_model_is_near_zero() -> None:
    _, proba, y = _calibrated_toy(200_000, 4, seed=0)
    assert expected_calibration_error(proba, y) < 0.005


def test_ece_extremes_and_hand_computed_case() -> None:
    one_hot = np.eye(3)[[0, 1, 2, 0]]
    assert expected_calibration_error(one_hot, np.array([0, 1, 2, 0])) == 0.0
    assert expected_calibration_error(one_hot, np.array([1, 2, 0, 1])) == pytest.approx(1.0)
    # Confidence 0.8 and right (gap 0.2), confidence 0.6 and wrong (gap 0.6), different bins.
    proba = np.array([[0.8, 0.2], [0.6, 0.4]])
    assert expected_calibration_error(proba, np.array([0, 1])) == pytest.approx(0.4)
    assert expected_calibration_error(np.empty((0, 2)), np.array([], dtype=int)) == 0.0


def test_temperature_scaling_repairs_an_overconfident_model() -> None:
    logits, _, y = _calibrated_toy(20_000, 5, seed=1)
    overconfident = _softmax(3.0 * logits)
    temperature = fit_temperature(overconfident, y)

    assert temperature == pytest.approx(3.0, rel=0.1)
    before = expected_calibration_error(overconfident, y)
    after = expected_calibration_error(apply_temperature(overconfident, temperature), y)
    assert before > 0.1
    assert after < 0.02


def test_temperature_sharpens_an_underconfident_model() -> None:
    logits, _, y = _calibrated_toy(20_000, 5, seed=2)
    underconfident = _softmax(0.25 * logits)
    assert fit_temperature(underconfident, y) == pytest.approx(0.25, rel=0.1)


def test_fit_temperature_edge_cases() -> None:
    assert fit_temperature(np.empty((0, 3)), np.array([], dtype=int)) == 1.0
    with pytest.raises(ValueError):
        fit_temperature(np.ones((3, 2)) / 2, np.array([0, 1]))


class _FixedHead:
    classes_ = np.array(["cat", "dog", "fox"], dtype=object)

    def __init__(self, proba: np.ndarray) -> None:
        self.proba = proba

    def fit(self, X: np.ndarray, y: np.ndarray) -> _FixedHead:
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.proba[: len(X)]


def test_temperature_scaled_head_keeps_ranking_and_normalisation() -> None:
    proba = np.array([[0.7, 0.2, 0.1], [0.0, 0.4, 0.6], [0.34, 0.33, 0.33]])
    head = TemperatureScaledHead(_FixedHead(proba), temperature=2.0)
    scaled = head.predict_proba(np.zeros((3, 4)))

    np.testing.assert_allclose(scaled.sum(axis=1), 1.0)
    assert (scaled.argmax(axis=1) == proba.argmax(axis=1)).all()
    assert scaled[0, 0] < proba[0, 0]  # T > 1 softens
    assert np.isfinite(scaled).all() and (scaled > 0).all()  # hard zeros stay finite
    assert head.predict(np.zeros((3, 4))).tolist() == ["cat", "fox", "cat"]
    assert list(head.classes_) == ["cat", "dog", "fox"]
    np.testing.assert_allclose(apply_temperature(proba[:1], 1.0), proba[:1])
    with pytest.raises(ValueError):
        TemperatureScaledHead(_FixedHead(proba), temperature=0.0)


def test_few_all_correct_samples_do_not_collapse_the_temperature() -> None:
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.75, 0.25], [0.2, 0.8]])
    y = np.array([0, 1, 0, 1])
    # Plain maximum likelihood sharpens without limit when every held-out answer is right...
    assert fit_temperature(proba, y, prior_weight=0.0) < 0.05
    # ...the prior towards T = 1 keeps four samples from claiming near-certainty.
    assert 0.3 < fit_temperature(proba, y) < 1.0

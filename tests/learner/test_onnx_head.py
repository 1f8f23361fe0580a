"""Every kind of head winnow serves, as an ONNX graph, gives the head's own probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from learner.calibration import TemperatureScaledHead
from learner.few_shot import TextAnchoredLogistic, TextPrior
from learner.finetune import TunedHead, TunedModel
from learner.heads import HEAD_FAMILIES
from learner.onnx_head import head_to_onnx
from learner.zero_shot import ZeroShotHead

DIM = 16
PARAMS = {
    "logistic_regression": {"C": 10.0},
    "linear_svm": {"C": 1.0, "calibration_folds": 2},
    "knn": {"n_neighbors": 5},
}


def unit_rows(count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def onnx_proba(head: Any, X: np.ndarray) -> np.ndarray:
    model = head_to_onnx(head, DIM, opset=18)
    session = onnxruntime.InferenceSession(model.SerializeToString())
    return np.asarray(session.run(["probabilities"], {"features": X})[0])


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = unit_rows(90, seed=0)
    y = np.array(["cat", "dog", "eel"])[np.random.default_rng(1).integers(0, 3, 90)]
    queries = np.concatenate([X[:5], unit_rows(40, seed=2)])  # exact matches, then new points
    return X, y, queries


@pytest.mark.parametrize("family", sorted(PARAMS))
@pytest.mark.parametrize("temperature", [None, 0.6, 1.7])
def test_trained_heads(family: str, temperature: float | None, data: Any) -> None:
    X, y, queries = data
    estimator = HEAD_FAMILIES[family].build(PARAMS[family]).fit(X, y)
    head = estimator if temperature is None else TemperatureScaledHead(estimator, temperature)
    got = onnx_proba(head, queries)
    assert got.shape == (len(queries), 3)
    # float32 in the graph against float64 here; kNN's exact matches (weight 1/0) stay exact
    assert np.abs(got - head.predict_proba(queries)).max() < 1e-3
    assert (got.argmax(1) == head.predict_proba(queries).argmax(1)).all()


def test_text_heads(data: Any) -> None:
    X, y, queries = data
    zero_shot = ZeroShotHead(["cat", "dog", "eel"], unit_rows(3, seed=3))
    anchored = TextAnchoredLogistic(TextPrior.of(zero_shot)).fit(X, y)
    for head in (zero_shot, anchored, TemperatureScaledHead(anchored, 0.8)):
        assert np.abs(onnx_proba(head, queries) - head.predict_proba(queries)).max() < 1e-5


@pytest.mark.parametrize("temperature", [None, 1.3])
def test_the_semi_supervised_head_exports_its_logistic_regression(
    temperature: float | None, data: Any
) -> None:
    X, y, queries = data
    traffic = unit_rows(200, seed=4)
    spread = HEAD_FAMILIES["label_spreading"].build({"C": 10.0}, unlabeled=traffic)  # type: ignore[call-arg]
    spread.fit(X, y)
    assert spread.pseudo_labelled_ > 0  # the traffic shaped it: not a plain logistic regression
    head = spread if temperature is None else TemperatureScaledHead(spread, temperature)
    got = onnx_proba(head, queries)
    assert got.shape == (len(queries), 3)
    assert np.abs(got - head.predict_proba(queries)).max() < 1e-5


def test_a_binary_head_keeps_both_columns(data: Any) -> None:
    X, y, queries = data
    binary = np.where(y == "cat", "cat", "other")
    head = HEAD_FAMILIES["logistic_regression"].build({"C": 1.0}).fit(X, binary)
    assert np.abs(onnx_proba(head, queries) - head.predict_proba(queries)).max() < 1e-5


def test_an_unknown_head_is_refused() -> None:
    class Odd:
        classes_ = np.array(["a", "b"])

    with pytest.raises(ValueError, match="no ONNX form for a head of type Odd"):
        head_to_onnx(Odd(), DIM, opset=18)


def tuned_model() -> TunedModel:
    model = TunedModel(torch.nn.Identity(), ["cat", "dog", "eel"], DIM, tuned_blocks=1)
    with torch.no_grad():
        model.head.weight.normal_(0.0, 3.0)  # logits far from uniform
    return model


def test_a_tuned_head_exports_the_linear_layer_it_answers_with(data: Any) -> None:
    _, _, queries = data
    head = TunedHead("efficientnet-lite0", tuned_model())
    assert np.abs(onnx_proba(head, queries) - head.predict_proba(queries)).max() < 1e-5


@pytest.mark.parametrize("temperature", [None, 0.7])
def test_a_tuned_head_with_a_classifier_exports_the_classifier(
    temperature: float | None, data: Any
) -> None:
    X, y, queries = data
    fitted = LogisticRegression(C=10.0).fit(X, y)  # on the tuned space's stored features
    classifier = fitted if temperature is None else TemperatureScaledHead(fitted, temperature)
    head = TunedHead("efficientnet-lite0", tuned_model(), classifier)
    got = onnx_proba(head, queries)
    assert got.shape == (len(queries), 3)
    assert np.abs(got - head.predict_proba(queries)).max() < 1e-4
    linear = TunedHead("efficientnet-lite0", head.model).predict_proba(queries)
    assert not np.allclose(got, linear, atol=1e-2)  # not the tuned linear layer's

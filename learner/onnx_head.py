"""Served heads as ONNX graphs: unit-length vectors in, the head's calibrated probabilities out.

:func:`head_to_onnx` covers every head winnow trains or serves. scikit-learn estimators (logistic
regression, the sigmoid-calibrated linear SVM, and the semi-supervised head's logistic regression,
which is all it answers with) go through skl2onnx, onnx's own converter; the heads written here are
spelt in plain ONNX operators: the cosine kNN (a matrix product, ``TopK`` and a weighted vote), the
zero-shot, text-anchored and preset heads and a tuned version's linear layer (a matrix product, a
bias and a softmax), and the temperature of
:class:`~learner.calibration.TemperatureScaledHead` (``softmax(log p / T)``).
A tuned version's features come from its own tower (:func:`embeddings.tuning.tuned_network`); a
tuned version with a classifier fitted on them exports that classifier as a plain head.
The graph computes in float32 where the service computes in float64; B10
(``python -m bench.onnx_export``) measures how far apart that leaves them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.base import ClassifierMixin

from learner.calibration import PROBABILITY_FLOOR, TemperatureScaledHead
from learner.few_shot import TextAnchoredLogistic
from learner.finetune import TunedHead
from learner.heads import CosineKNeighbors
from learner.presets import PresetHead
from learner.semi_supervised import SpreadThenLogistic
from learner.zero_shot import ZeroShotHead

INPUT = "features"
OUTPUT = "probabilities"
IR_VERSION = 10  # the ONNX IR torch's exporter writes; onnxruntime 1.18 and later read it
RAW = "head_probabilities"  # the head's own probabilities, before its temperature


def head_to_onnx(head: Any, dim: int, *, opset: int) -> onnx.ModelProto:
    """The ONNX model of ``head``: ``features`` ``(n, dim)`` float32 to ``probabilities``
    ``(n, len(head.classes_))`` float32, columns in ``head.classes_`` order.

    Args:
        head: a fitted head as the service serves it.
        dim: the width of the vectors it takes.
        opset: the ONNX opset to write (that of the backbone graph it will be joined to).

    Raises:
        ValueError: a kind of head with no ONNX form.
    """
    if isinstance(head, TunedHead) and head.classifier is not None:
        head = head.classifier  # it answers on the tuned tower's features, as a plain head would
    temperature = 1.0
    if isinstance(head, TemperatureScaledHead):
        temperature, head = head.temperature, head.estimator
    core = _core(head, dim, opset)
    nodes: list[onnx.NodeProto] = []
    weights: list[onnx.TensorProto] = []
    if temperature == 1.0:
        nodes.append(helper.make_node("Identity", [RAW], [OUTPUT]))
    else:
        _temperature(temperature, nodes, weights)
    tail = _model(nodes, weights, RAW, OUTPUT, len(head.classes_), len(head.classes_), opset)
    core.ir_version = IR_VERSION  # skl2onnx writes an older IR; merging needs one
    model = onnx.compose.merge_models(core, tail, io_map=[(RAW, RAW)], outputs=[OUTPUT])
    onnx.checker.check_model(model, full_check=True)
    return model


def _core(head: Any, dim: int, opset: int) -> onnx.ModelProto:
    """The head's own probabilities (output :data:`RAW`) of ``features``."""
    classes = len(head.classes_)
    nodes: list[onnx.NodeProto] = []
    weights: list[onnx.TensorProto] = []
    if isinstance(head, SpreadThenLogistic):  # what answers is its logistic regression
        return _sklearn(head.estimator_, dim, opset)
    if isinstance(head, CosineKNeighbors):
        _knn(head, nodes, weights)
    elif isinstance(head, ZeroShotHead):
        _scaled_cosine_softmax(head.logit_scale * head.text_weights, nodes, weights)
    elif isinstance(head, TextAnchoredLogistic):
        _scaled_cosine_softmax(head.coef_, nodes, weights)
    elif isinstance(head, PresetHead):
        _scaled_cosine_softmax(head.coef_, nodes, weights, bias=head.intercept_)
    elif isinstance(head, TunedHead):  # no classifier: its linear layer on the unit features
        linear = head.model.head
        weight, bias = linear.weight.detach().cpu().numpy(), linear.bias.detach().cpu().numpy()
        _scaled_cosine_softmax(weight, nodes, weights, bias=bias)
    elif isinstance(head, ClassifierMixin):
        return _sklearn(head, dim, opset)
    else:
        raise ValueError(f"no ONNX form for a head of type {type(head).__name__}")
    return _model(nodes, weights, INPUT, RAW, dim, classes, opset)


def _model(
    nodes: list[onnx.NodeProto],
    weights: list[onnx.TensorProto],
    source: str,
    out: str,
    width_in: int,
    width_out: int,
    opset: int,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "winnow_head",
        [helper.make_tensor_value_info(source, TensorProto.FLOAT, ["batch", width_in])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", width_out])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = IR_VERSION
    return model


def _constant(
    name: str, value: Any, weights: list[onnx.TensorProto], dtype: Any = np.float32
) -> str:
    weights.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
    return name


def _unit_rows(source: str, out: str, nodes: list[onnx.NodeProto]) -> None:
    """``out`` = rows of ``source`` scaled to unit length (the backbone's rows already are)."""
    nodes.append(helper.make_node("LpNormalization", [source], [out], axis=1, p=2))


def _scaled_cosine_softmax(
    rows: np.ndarray,
    nodes: list[onnx.NodeProto],
    weights: list[onnx.TensorProto],
    *,
    bias: np.ndarray | None = None,
) -> None:
    """``out = softmax(unit(features) @ rows.T + bias)`` (zero-shot: rows are scaled text
    weights, no bias; a preset: a pretrained classifier's rows and biases)."""
    _unit_rows(INPUT, "unit", nodes)
    matrix = _constant("head_weights_t", np.asarray(rows, dtype=np.float64).T, weights)
    if bias is None:
        nodes.append(helper.make_node("MatMul", ["unit", matrix], ["logits"]))
    else:
        nodes.append(helper.make_node("MatMul", ["unit", matrix], ["cosine_logits"]))
        offset = _constant("head_bias", bias, weights)
        nodes.append(helper.make_node("Add", ["cosine_logits", offset], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], [RAW], axis=1))


def _knn(
    head: CosineKNeighbors,
    nodes: list[onnx.NodeProto],
    weights: list[onnx.TensorProto],
) -> None:
    """Distance-weighted cosine kNN as in :meth:`CosineKNeighbors.predict_proba`: the ``k``
    most similar samples vote ``1 / (1 - cos)``; an exact match (distance 0) takes all the
    weight."""
    samples = head._samples
    k = min(head.n_neighbors, len(samples))
    n_classes = len(head.classes_)
    _unit_rows(INPUT, "unit", nodes)
    nodes.append(
        helper.make_node(
            "MatMul", ["unit", _constant("knn_samples_t", samples.T, weights)], ["similarity"]
        )
    )
    nodes.append(
        helper.make_node(
            "TopK",
            ["similarity", _constant("knn_k", [k], weights, np.int64)],
            ["nearest_similarity", "nearest"],
            axis=1,
        )
    )
    one = _constant("knn_one", 1.0, weights)
    axis = _constant("knn_axis", [1], weights, np.int64)  # per query, over its neighbours
    zero = _constant("knn_zero", 0.0, weights)
    nodes += [
        helper.make_node("Sub", [one, "nearest_similarity"], ["raw_distance"]),
        helper.make_node("Max", ["raw_distance", zero], ["distance"]),
        helper.make_node("Equal", ["distance", zero], ["exact"]),
        helper.make_node("Cast", ["exact"], ["exact_float"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMax", ["exact_float", axis], ["any_exact"], keepdims=1),
        helper.make_node("Greater", ["any_exact", zero], ["has_exact"]),
        helper.make_node("Reciprocal", ["distance"], ["inverse_distance"]),
        helper.make_node("Where", ["has_exact", "exact_float", "inverse_distance"], ["weight"]),
        helper.make_node(
            "Gather",
            [_constant("knn_labels", head._label_index, weights, np.int64), "nearest"],
            ["nearest_label"],
        ),
        helper.make_node(
            "OneHot",
            [
                "nearest_label",
                _constant("knn_depth", [n_classes], weights, np.int64),
                _constant("knn_off_on", [0.0, 1.0], weights),
            ],
            ["label_onehot"],
            axis=-1,
        ),
        helper.make_node(
            "Unsqueeze", ["weight", _constant("knn_last", [2], weights, np.int64)], ["weight_3d"]
        ),
        helper.make_node("Mul", ["label_onehot", "weight_3d"], ["weighted_votes"]),
        helper.make_node(
            "ReduceSum",
            ["weighted_votes", axis],
            ["votes"],
            keepdims=0,
        ),
        helper.make_node(
            "ReduceSum",
            ["votes", axis],
            ["vote_total"],
            keepdims=1,
        ),
        helper.make_node("Div", ["votes", "vote_total"], [RAW]),
    ]


def _temperature(
    temperature: float, nodes: list[onnx.NodeProto], weights: list[onnx.TensorProto]
) -> None:
    """``probabilities = softmax(log(clip(source, floor, 1)) / T)``, as
    :func:`learner.calibration.apply_temperature`."""
    nodes += [
        helper.make_node(
            "Clip",
            [
                RAW,
                _constant("temperature_floor", PROBABILITY_FLOOR, weights),
                _constant("temperature_ceiling", 1.0, weights),
            ],
            ["clipped"],
        ),
        helper.make_node("Log", ["clipped"], ["log_probabilities"]),
        helper.make_node(
            "Div",
            ["log_probabilities", _constant("temperature", temperature, weights)],
            ["tempered"],
        ),
        helper.make_node("Softmax", ["tempered"], [OUTPUT], axis=1),
    ]


def _sklearn(estimator: Any, dim: int, opset: int) -> onnx.ModelProto:
    """skl2onnx's graph of a fitted scikit-learn classifier: its probabilities (as a plain tensor,
    renamed :data:`RAW`) the only output."""
    from skl2onnx import convert_sklearn  # imported here: it loads slowly, and only export needs it
    from skl2onnx.common.data_types import FloatTensorType

    converted = convert_sklearn(
        estimator,
        initial_types=[(INPUT, FloatTensorType([None, dim]))],
        options={id(estimator): {"zipmap": False}},
        target_opset={"": opset, "ai.onnx.ml": 3},
    )
    converted = onnx.compose.add_prefix(converted, "sklearn_")  # apart from the other edges
    produced = next(out.name for out in converted.graph.output if "prob" in out.name)
    renamed = {"sklearn_" + INPUT: INPUT, produced: RAW}
    for node in converted.graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
    converted.graph.input[0].name = INPUT
    outputs = [out for out in converted.graph.output if out.name == produced]
    outputs[0].name = RAW
    del converted.graph.output[:]
    converted.graph.output.extend(outputs)
    return converted  # type: ignore[no-any-return]

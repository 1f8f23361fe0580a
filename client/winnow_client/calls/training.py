"""The calls that train, deploy and invoke models."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from winnow_client.calls.base import Call, flag, fn_path, many, one, raw
from winnow_client.errors import WinnowError, error_for
from winnow_client.images import ImageLike, data_field
from winnow_client.models import Function, ModelVersion, Prediction, TrainingStatus


def train(function_id: str) -> Call[ModelVersion]:
    """Train now and wait; the new version is deployed only if it is not worse (``decision``)."""
    return Call("POST", fn_path(function_id, "train"), one(ModelVersion), params={"wait": "true"})


def request_training(function_id: str) -> Call[TrainingStatus]:
    """Queue a training for the scheduler and return at once (409 when the scheduler is off)."""
    path = fn_path(function_id, "train")
    return Call("POST", path, one(TrainingStatus), params={"wait": "false"})


def training_status(function_id: str) -> Call[TrainingStatus]:
    return Call("GET", fn_path(function_id, "training"), one(TrainingStatus))


def list_models(function_id: str) -> Call[list[ModelVersion]]:
    """Every trained version, newest first."""
    return Call("GET", fn_path(function_id, "models"), many(ModelVersion))


def deploy(function_id: str, version: int, *, pin: bool = True) -> Call[ModelVersion]:
    """Serve ``version`` now (roll back or forward); ``pin`` stops automatic promotion."""
    path = fn_path(function_id, "models", version, "deploy")
    return Call("POST", path, one(ModelVersion), params={"pin": flag(pin)})


def pin(function_id: str) -> Call[Function]:
    return Call("POST", fn_path(function_id, "pin"), one(Function))


def unpin(function_id: str) -> Call[Function]:
    return Call("DELETE", fn_path(function_id, "pin"), one(Function))


def metrics(function_id: str) -> Call[ModelVersion]:
    """The deployed version with its cross-validated metrics (404 before one is deployed)."""
    return Call("GET", fn_path(function_id, "metrics"), one(ModelVersion))


def confusion_matrix_png(function_id: str) -> Call[bytes]:
    path = fn_path(function_id, "metrics", "confusion-matrix.png")
    return Call("GET", path, raw, binary=True)


def export_model(function_id: str, version: int | None = None) -> Call[bytes]:
    """One ONNX file of ``version`` (default: the deployed one): uint8 RGB pixels in,
    probabilities out, labels and preprocessing in its metadata (the server's docs show how to
    run it with onnxruntime alone)."""
    params = None if version is None else {"version": version}
    return Call("GET", fn_path(function_id, "model.onnx"), raw, params=params, binary=True)


def _invoke_params(capture: bool, version: int | None, label_count: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {"capture": flag(capture)}
    if version is not None:
        params["version"] = version
    if label_count is not None:
        params["labelCount"] = label_count
    return params


def invoke(
    function_id: str,
    image: ImageLike,
    *,
    capture: bool = True,
    version: int | None = None,
    label_count: int | None = None,
) -> Call[Prediction]:
    """``label_count``: keep the confidences of that many most likely labels (default: all)."""
    body = {"data": data_field(image)}
    params = _invoke_params(capture, version, label_count)
    return Call("POST", fn_path(function_id, "invoke"), one(Prediction), json=body, params=params)


def _batch_entries(body: Any) -> list[Prediction | WinnowError]:
    return [
        error_for(entry["status"], entry["message"])
        if "status" in entry
        else Prediction.from_json(entry)
        for entry in body["data"]
    ]


def invoke_batch(
    function_id: str,
    images: Iterable[ImageLike],
    *,
    capture: bool = True,
    version: int | None = None,
    label_count: int | None = None,
) -> Call[list[Prediction | WinnowError]]:
    """Several images in one request: one entry per image, in order, a Prediction or the
    WinnowError of an image that failed on its own (errors of the whole request raise)."""
    body = {"items": [{"data": data_field(image)} for image in images]}
    params = _invoke_params(capture, version, label_count)
    path = fn_path(function_id, "invoke", "batch")
    return Call("POST", path, _batch_entries, json=body, params=params)

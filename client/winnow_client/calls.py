"""Every API operation once, as a :class:`Call`: the request to send and how to read the answer.

``Client`` and ``AsyncClient`` only execute calls, so the two share every path, parameter and
parser. Adding an operation is one builder here plus one line in each client (``endpoint(...)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from winnow_client.errors import WinnowError, error_for
from winnow_client.images import ImageLike, data_field
from winnow_client.models import (
    AcceptedProposal,
    ApiKey,
    CapturePolicy,
    CreatedKey,
    Dashboard,
    Function,
    Label,
    ModelVersion,
    Page,
    Prediction,
    Proposal,
    Record,
    ReviewCounts,
    ReviewItem,
    Sample,
    SearchHit,
    TrainingStatus,
    camel_case,
)

T = TypeVar("T")
R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the parser of its answer (decoded JSON, or bytes when ``binary``)."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] | None = None
    binary: bool = False


def _one(kind: type[R]) -> Callable[[Any], R]:
    return kind.from_json


def _list(kind: type[R]) -> Callable[[Any], list[R]]:
    return lambda body: [kind.from_json(item) for item in body["data"]]


def _page(kind: type[R]) -> Callable[[Any], Page[R]]:
    return lambda body: Page([kind.from_json(item) for item in body["data"]], body["count"])


def _none(_: Any) -> None:
    return None


def _bytes(body: Any) -> bytes:
    return body  # type: ignore[no-any-return]


def _fn(function_id: str, *rest: str | int) -> str:
    return "/v1/functions/" + "/".join(quote(str(part), safe="") for part in (function_id, *rest))


def _flag(value: bool) -> str:
    return "true" if value else "false"


# functions and labels ----------------------------------------------------------------------------


def create_function(
    name: str, labels: Iterable[str] = (), *, backbone: str | None = None
) -> Call[Function]:
    body: dict[str, Any] = {"name": name, "labels": list(labels)}
    if backbone:
        body["backbone"] = backbone
    return Call("POST", "/v1/functions", _one(Function), json=body)


def list_functions() -> Call[list[Function]]:
    """The functions the key can see."""
    return Call("GET", "/v1/functions", _list(Function))


def get_function(function_id: str) -> Call[Function]:
    return Call("GET", _fn(function_id), _one(Function))


def delete_function(function_id: str) -> Call[None]:
    """Delete a function with its samples, images and models."""
    return Call("DELETE", _fn(function_id), _none)


def create_label(function_id: str, name: str, *, description: str | None = None) -> Call[Label]:
    body = {"name": name, "description": description}
    return Call("POST", _fn(function_id, "labels"), _one(Label), json=body)


def list_labels(function_id: str) -> Call[list[Label]]:
    return Call("GET", _fn(function_id, "labels"), _list(Label))


def get_label(function_id: str, label_id: str) -> Call[Label]:
    return Call("GET", _fn(function_id, "labels", label_id), _one(Label))


def update_label(
    function_id: str, label_id: str, name: str, *, description: str | None = None
) -> Call[Label]:
    body = {"name": name, "description": description}
    return Call("PUT", _fn(function_id, "labels", label_id), _one(Label), json=body)


def delete_label(function_id: str, label_id: str) -> Call[None]:
    return Call("DELETE", _fn(function_id, "labels", label_id), _none)


# samples and search ------------------------------------------------------------------------------


def create_sample(
    function_id: str,
    image: ImageLike,
    label: str | None = None,
    *,
    external_id: str | None = None,
) -> Call[Sample]:
    """Add an image, optionally labelled; the same ``external_id`` again returns that sample."""
    body: dict[str, Any] = {"data": data_field(image)}
    if label is not None:
        body["annotation"] = {"labelName": label}
    if external_id is not None:
        body["externalId"] = external_id
    return Call("POST", _fn(function_id, "samples"), _one(Sample), json=body)


def list_samples(
    function_id: str, *, annotated: bool | None = None, start_index: int = 0, count: int = 100
) -> Call[Page[Sample]]:
    params: dict[str, Any] = {"startIndex": start_index, "count": count}
    if annotated is not None:
        params["annotated"] = _flag(annotated)
    return Call("GET", _fn(function_id, "samples"), _page(Sample), params=params)


def get_sample(function_id: str, sample_id: str) -> Call[Sample]:
    return Call("GET", _fn(function_id, "samples", sample_id), _one(Sample))


def sample_image(function_id: str, sample_id: str) -> Call[bytes]:
    """The sample's image bytes, as uploaded."""
    return Call("GET", _fn(function_id, "samples", sample_id, "image"), _bytes, binary=True)


def set_annotation(function_id: str, sample_id: str, label: str) -> Call[Sample]:
    path = _fn(function_id, "samples", sample_id, "annotation")
    return Call("PUT", path, _one(Sample), json={"labelName": label})


def remove_annotation(function_id: str, sample_id: str) -> Call[Sample]:
    return Call("DELETE", _fn(function_id, "samples", sample_id, "annotation"), _one(Sample))


def delete_sample(function_id: str, sample_id: str) -> Call[None]:
    return Call("DELETE", _fn(function_id, "samples", sample_id), _none)


def search(function_id: str, image: ImageLike, *, count: int = 10) -> Call[list[SearchHit]]:
    """The labelled samples most similar to an image, most similar first."""
    body = {"data": data_field(image), "count": count}
    return Call("POST", _fn(function_id, "search"), _list(SearchHit), json=body)


def similar_samples(function_id: str, sample_id: str, *, count: int = 10) -> Call[list[SearchHit]]:
    path = _fn(function_id, "samples", sample_id, "similar")
    return Call("GET", path, _list(SearchHit), params={"count": count})


# training and models -----------------------------------------------------------------------------


def train(function_id: str) -> Call[ModelVersion]:
    """Train now and wait; the new version is deployed only if it is not worse (``decision``)."""
    return Call("POST", _fn(function_id, "train"), _one(ModelVersion), params={"wait": "true"})


def request_training(function_id: str) -> Call[TrainingStatus]:
    """Queue a training for the scheduler and return at once (409 when the scheduler is off)."""
    path = _fn(function_id, "train")
    return Call("POST", path, _one(TrainingStatus), params={"wait": "false"})


def training_status(function_id: str) -> Call[TrainingStatus]:
    return Call("GET", _fn(function_id, "training"), _one(TrainingStatus))


def list_models(function_id: str) -> Call[list[ModelVersion]]:
    """Every trained version, newest first."""
    return Call("GET", _fn(function_id, "models"), _list(ModelVersion))


def deploy(function_id: str, version: int, *, pin: bool = True) -> Call[ModelVersion]:
    """Serve ``version`` now (roll back or forward); ``pin`` stops automatic promotion."""
    path = _fn(function_id, "models", version, "deploy")
    return Call("POST", path, _one(ModelVersion), params={"pin": _flag(pin)})


def pin(function_id: str) -> Call[Function]:
    return Call("POST", _fn(function_id, "pin"), _one(Function))


def unpin(function_id: str) -> Call[Function]:
    return Call("DELETE", _fn(function_id, "pin"), _one(Function))


def metrics(function_id: str) -> Call[ModelVersion]:
    """The deployed version with its cross-validated metrics (404 before one is deployed)."""
    return Call("GET", _fn(function_id, "metrics"), _one(ModelVersion))


def confusion_matrix_png(function_id: str) -> Call[bytes]:
    path = _fn(function_id, "metrics", "confusion-matrix.png")
    return Call("GET", path, _bytes, binary=True)


# invoke ------------------------------------------------------------------------------------------


def _invoke_params(capture: bool, version: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {"capture": _flag(capture)}
    if version is not None:
        params["version"] = version
    return params


def invoke(
    function_id: str, image: ImageLike, *, capture: bool = True, version: int | None = None
) -> Call[Prediction]:
    body = {"data": data_field(image)}
    params = _invoke_params(capture, version)
    return Call("POST", _fn(function_id, "invoke"), _one(Prediction), json=body, params=params)


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
) -> Call[list[Prediction | WinnowError]]:
    """Several images in one request: one entry per image, in order, a Prediction or the
    WinnowError of an image that failed on its own (errors of the whole request raise)."""
    body = {"items": [{"data": data_field(image)} for image in images]}
    params = _invoke_params(capture, version)
    path = _fn(function_id, "invoke", "batch")
    return Call("POST", path, _batch_entries, json=body, params=params)


# review queue and capture ------------------------------------------------------------------------


def review_items(
    function_id: str,
    *,
    status: str = "pending",
    kind: str | None = None,
    start_index: int = 0,
    count: int = 50,
) -> Call[Page[ReviewItem]]:
    """Items in a status, most informative first; ``kind`` is capture or suspect (both: None)."""
    params: dict[str, Any] = {"status": status, "startIndex": start_index, "count": count}
    if kind is not None:
        params["kind"] = kind
    return Call("GET", _fn(function_id, "review"), _page(ReviewItem), params=params)


def review_counts(function_id: str) -> Call[ReviewCounts]:
    return Call("GET", _fn(function_id, "review", "counts"), _one(ReviewCounts))


def annotate(
    function_id: str, item_id: str, label: str, *, annotated_by: str | None = None
) -> Call[ReviewItem]:
    body = {"labelName": label, "annotatedBy": annotated_by}
    path = _fn(function_id, "review", item_id, "annotate")
    return Call("POST", path, _one(ReviewItem), json=body)


def annotate_many(
    function_id: str,
    labels: Mapping[str, str] | Iterable[tuple[str, str]],
    *,
    annotated_by: str | None = None,
) -> Call[list[ReviewItem]]:
    """Label many items (``{item_id: label}``) in one request: all are written or none."""
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    items = [{"itemId": item_id, "labelName": label} for item_id, label in pairs]
    body = {"items": items, "annotatedBy": annotated_by}
    return Call("POST", _fn(function_id, "review", "annotate"), _list(ReviewItem), json=body)


def skip(function_id: str, item_id: str) -> Call[ReviewItem]:
    return Call("POST", _fn(function_id, "review", item_id, "skip"), _one(ReviewItem))


def discard(function_id: str, item_id: str) -> Call[ReviewItem]:
    return Call("POST", _fn(function_id, "review", item_id, "discard"), _one(ReviewItem))


def mark_novel(function_id: str, item_id: str) -> Call[ReviewItem]:
    """None of the function's labels fits the item: it is skipped and joins new-class proposals."""
    return Call("POST", _fn(function_id, "review", item_id, "novel"), _one(ReviewItem))


def proposals(function_id: str) -> Call[list[Proposal]]:
    """Clusters of novel review items that may be a missing label, largest first."""
    return Call("GET", _fn(function_id, "proposals"), _list(Proposal))


def accept_proposal(
    function_id: str,
    proposal_id: str,
    label: str,
    *,
    exclude_item_ids: Iterable[str] = (),
    annotated_by: str | None = None,
) -> Call[AcceptedProposal]:
    """Create ``label`` and annotate the proposal's items (less ``exclude_item_ids``) with it."""
    body = {
        "labelName": label,
        "excludeItemIds": list(exclude_item_ids),
        "annotatedBy": annotated_by,
    }
    path = _fn(function_id, "proposals", proposal_id, "accept")
    return Call("POST", path, _one(AcceptedProposal), json=body)


def dismiss_proposal(function_id: str, proposal_id: str) -> Call[Proposal]:
    """Not a new label: its items stay in review and never join a proposal again."""
    return Call("POST", _fn(function_id, "proposals", proposal_id, "dismiss"), _one(Proposal))


def similar_to_item(function_id: str, item_id: str, *, count: int = 10) -> Call[list[SearchHit]]:
    """The labelled samples most similar to a review item (what a reviewer compares it with)."""
    path = _fn(function_id, "review", item_id, "similar")
    return Call("GET", path, _list(SearchHit), params={"count": count})


def review_image(item_id: str) -> Call[bytes]:
    path = "/v1/review/" + quote(item_id, safe="") + "/image"
    return Call("GET", path, _bytes, binary=True)


def capture_policy(function_id: str) -> Call[CapturePolicy]:
    return Call("GET", _fn(function_id, "capture-policy"), _one(CapturePolicy))


def set_capture_policy(function_id: str, **changes: Any) -> Call[CapturePolicy]:
    """Change some policy settings (snake_case or camelCase names); the rest keep their values."""
    body = {camel_case(name): value for name, value in changes.items()}
    return Call("PUT", _fn(function_id, "capture-policy"), _one(CapturePolicy), json=body)


def dashboard(function_id: str, *, hours: int | None = None) -> Call[Dashboard]:
    """Label counts and the review activity over the last ``hours`` (the service's default)."""
    params = {"hours": hours} if hours is not None else None
    return Call("GET", _fn(function_id, "dashboard"), _one(Dashboard), params=params)


def chart_png(function_id: str, chart: str, *, hours: int | None = None) -> Call[bytes]:
    """A dashboard chart as PNG: ``model-history``, ``activity`` or ``labels``."""
    params = {"hours": hours} if hours is not None else None
    path = _fn(function_id, "charts", f"{chart}.png")
    return Call("GET", path, _bytes, params=params, binary=True)


# keys and health ---------------------------------------------------------------------------------


def create_key(
    scopes: Iterable[str],
    *,
    function_id: str | None = None,
    name: str | None = None,
    rate_limit_per_minute: int | None = None,
) -> Call[CreatedKey]:
    """A new API key; its text (``.key``) is in this answer only."""
    body = {
        "scopes": list(scopes),
        "functionId": function_id,
        "name": name,
        "rateLimitPerMinute": rate_limit_per_minute,
    }
    return Call("POST", "/v1/keys", _one(CreatedKey), json=body)


def list_keys() -> Call[list[ApiKey]]:
    return Call("GET", "/v1/keys", _list(ApiKey))


def delete_key(key_id: str) -> Call[None]:
    return Call("DELETE", "/v1/keys/" + quote(key_id, safe=""), _none)


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/health", dict)

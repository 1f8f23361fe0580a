"""The calls on samples, their annotations and image search."""

from __future__ import annotations

from typing import Any

from winnow_client.calls.base import Call, flag, fn_path, many, nothing, one, paged, raw
from winnow_client.images import ImageLike, data_field
from winnow_client.models import LabelEvent, Page, Sample, SearchHit


def create_sample(
    function_id: str,
    image: ImageLike,
    label: str | None = None,
    *,
    external_id: str | None = None,
    annotated_by: str | None = None,
    via: str | None = None,
) -> Call[Sample]:
    """Add an image, optionally labelled; the same ``external_id`` again returns that sample.

    ``annotated_by`` (admin keys only; others get 403): who the label history records as giving
    the label, e.g. a dataset's original reviewer. ``via="import"``: the sample comes from a
    dataset import, and its history says so.
    """
    body: dict[str, Any] = {"data": data_field(image)}
    if label is not None:
        body["annotation"] = {"labelName": label}
        if annotated_by is not None:
            body["annotation"]["annotatedBy"] = annotated_by
    elif annotated_by is not None:
        raise ValueError("annotated_by names who gave a label: send a label with it")
    if external_id is not None:
        body["externalId"] = external_id
    if via is not None:
        body["via"] = via
    return Call("POST", fn_path(function_id, "samples"), one(Sample), json=body)


def list_samples(
    function_id: str, *, annotated: bool | None = None, start_index: int = 0, count: int = 100
) -> Call[Page[Sample]]:
    params: dict[str, Any] = {"startIndex": start_index, "count": count}
    if annotated is not None:
        params["annotated"] = flag(annotated)
    return Call("GET", fn_path(function_id, "samples"), paged(Sample), params=params)


def get_sample(function_id: str, sample_id: str) -> Call[Sample]:
    return Call("GET", fn_path(function_id, "samples", sample_id), one(Sample))


def sample_image(function_id: str, sample_id: str) -> Call[bytes]:
    """The sample's image bytes, as uploaded."""
    return Call("GET", fn_path(function_id, "samples", sample_id, "image"), raw, binary=True)


def set_annotation(
    function_id: str, sample_id: str, label: str, *, annotated_by: str | None = None
) -> Call[Sample]:
    """Give the sample ``label`` (``annotated_by``: as for :func:`create_sample`)."""
    path = fn_path(function_id, "samples", sample_id, "annotation")
    body: dict[str, Any] = {"labelName": label}
    if annotated_by is not None:
        body["annotatedBy"] = annotated_by
    return Call("PUT", path, one(Sample), json=body)


def remove_annotation(function_id: str, sample_id: str) -> Call[Sample]:
    return Call("DELETE", fn_path(function_id, "samples", sample_id, "annotation"), one(Sample))


def delete_sample(function_id: str, sample_id: str) -> Call[None]:
    return Call("DELETE", fn_path(function_id, "samples", sample_id), nothing)


def sample_history(function_id: str, sample_id: str) -> Call[list[LabelEvent]]:
    """The sample's label changes, oldest first (a deleted sample's too)."""
    path = fn_path(function_id, "samples", sample_id, "history")
    return Call("GET", path, many(LabelEvent))


def search(function_id: str, image: ImageLike, *, count: int = 10) -> Call[list[SearchHit]]:
    """The labelled samples most similar to an image, most similar first."""
    body = {"data": data_field(image), "count": count}
    return Call("POST", fn_path(function_id, "search"), many(SearchHit), json=body)


def similar_samples(function_id: str, sample_id: str, *, count: int = 10) -> Call[list[SearchHit]]:
    path = fn_path(function_id, "samples", sample_id, "similar")
    return Call("GET", path, many(SearchHit), params={"count": count})

"""The calls on functions and their labels."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from winnow_client.calls.base import Call, fn_path, many, nothing, one
from winnow_client.models import Function, Label


def create_function(
    name: str,
    labels: Iterable[str] = (),
    *,
    backbone: str | None = None,
    preset: str | None = None,
) -> Call[Function]:
    """A new function; with ``preset="imagenet"`` version 0 is a pretrained ImageNet classifier
    (``labels`` then restricts it to those ImageNet classes)."""
    body: dict[str, Any] = {"name": name, "labels": list(labels)}
    if backbone:
        body["backbone"] = backbone
    if preset:
        body["preset"] = preset
    return Call("POST", "/v1/functions", one(Function), json=body)


def list_functions() -> Call[list[Function]]:
    """The functions the key can see."""
    return Call("GET", "/v1/functions", many(Function))


def get_function(function_id: str) -> Call[Function]:
    return Call("GET", fn_path(function_id), one(Function))


def delete_function(function_id: str) -> Call[None]:
    """Delete a function with its samples, images and models."""
    return Call("DELETE", fn_path(function_id), nothing)


def create_label(function_id: str, name: str, *, description: str | None = None) -> Call[Label]:
    body = {"name": name, "description": description}
    return Call("POST", fn_path(function_id, "labels"), one(Label), json=body)


def list_labels(function_id: str) -> Call[list[Label]]:
    return Call("GET", fn_path(function_id, "labels"), many(Label))


def get_label(function_id: str, label_id: str) -> Call[Label]:
    return Call("GET", fn_path(function_id, "labels", label_id), one(Label))


def update_label(
    function_id: str, label_id: str, name: str, *, description: str | None = None
) -> Call[Label]:
    body = {"name": name, "description": description}
    return Call("PUT", fn_path(function_id, "labels", label_id), one(Label), json=body)


def delete_label(function_id: str, label_id: str) -> Call[None]:
    return Call("DELETE", fn_path(function_id, "labels", label_id), nothing)

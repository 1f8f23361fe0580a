"""The calls on API keys, and the health check."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from winnow_client.calls.base import Call, many, nothing, one
from winnow_client.models import ApiKey, CreatedKey


def create_key(
    scopes: Iterable[str],
    *,
    function_id: str | None = None,
    name: str | None = None,
    reviewer: str | None = None,
    rate_limit_per_minute: int | None = None,
) -> Call[CreatedKey]:
    """A new API key; its text (``.key``) is in this answer only. ``reviewer``: the person whose
    label changes through the key the label history records (several keys may share one)."""
    body = {
        "scopes": list(scopes),
        "functionId": function_id,
        "name": name,
        "reviewer": reviewer,
        "rateLimitPerMinute": rate_limit_per_minute,
    }
    return Call("POST", "/v1/keys", one(CreatedKey), json=body)


def list_keys() -> Call[list[ApiKey]]:
    return Call("GET", "/v1/keys", many(ApiKey))


def delete_key(key_id: str) -> Call[None]:
    return Call("DELETE", "/v1/keys/" + quote(key_id, safe=""), nothing)


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/health", dict)

"""The shapes every resource builds on (JSON in camelCase, as Nyckel's API), and the
service-wide ones: errors, pages, health."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic.alias_generators import to_camel

from store import MAX_REVIEWER_NAME, as_utc, normalize_reviewer_name

T = TypeVar("T")


Timestamp = Annotated[datetime, AfterValidator(as_utc)]

# A person's name as the label history records it (a key's reviewer, an admin's annotatedBy):
# trimmed, NFC, no control, format or line-breaking characters (a 422 says which).
ReviewerName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_REVIEWER_NAME),
    AfterValidator(normalize_reviewer_name),
]

# Largest ``startIndex`` of a list: beyond it no page exists, and the value still fits a 64-bit
# SQL integer (a larger one would be a database error, not an empty page).
MAX_START_INDEX = 1_000_000_000


class Schema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Body(Schema):
    """Request bodies reject unknown fields, so a typo is a 422 rather than silently ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        _check_storable(data)
        return data


def _check_storable(value: Any) -> None:
    """Text a database can store: PostgreSQL rejects NUL characters, every driver rejects lone
    surrogates (they are not UTF-8). Checked here so both are a 422 on every backend."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key)
            _check_storable(item)
    elif isinstance(value, list):
        for item in value:
            _check_storable(item)


def camel_keys(value: Any) -> Any:
    """Every dict key in camelCase, recursively (for winnow's own nested records)."""
    if isinstance(value, dict):
        return {to_camel(str(k)): camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


class ErrorMessage(Schema):
    """Every error response: a 4xx (or 503) status with a message a person can act on."""

    message: str


class Page(Schema, Generic[T]):
    """List responses: the page of items and the total count."""

    data: list[T]
    count: int


class Health(Schema):
    status: str
    backbone: str
    backbones_loaded: list[str]
    database: str

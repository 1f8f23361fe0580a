"""The review queue and its capture policy."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from service.schemas.base import Body, Schema, Timestamp


class ReviewItemPublic(Schema):
    id: str
    function_id: str
    kind: str = Field(
        default="capture",
        description="capture (an invoke input) or suspect (a labelled sample whose label a "
        "training doubts; annotating it sets that sample's label).",
    )
    status: str
    predicted_label: str | None
    confidence: float | None
    model_version: int | None
    reason: str
    score: float
    scores: dict[str, Any]
    label_name: str | None
    sample_id: str | None
    given_label: str | None = Field(
        default=None, description="Suspects: the sample's label when the training doubted it."
    )
    suggested_label: str | None = Field(
        default=None, description="Suspects: the label the model finds more likely."
    )
    annotated_by: str | None
    created_at: Timestamp
    updated_at: Timestamp
    image_url: str


class ReviewAnnotate(Body):
    label_name: str = Field(min_length=1, max_length=200)
    annotated_by: str | None = Field(default=None, max_length=200)


class BulkAnnotation(Body):
    item_id: str
    label_name: str = Field(min_length=1, max_length=200)


class BulkAnnotate(Body):
    items: list[BulkAnnotation] = Field(min_length=1, max_length=1000)
    annotated_by: str | None = Field(default=None, max_length=200)


class ReviewCounts(Schema):
    pending: int
    annotated: int
    skipped: int
    discarded: int


class CapturePolicyBody(Schema):
    """Capture policy settings (camelCase); omitted settings keep their current values."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class CapturePolicyPublic(Schema):
    policy: dict[str, Any]
    status: dict[str, Any]

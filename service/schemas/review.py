"""The review queue and its capture policy."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from service.schemas.base import Body, ReviewerName, Schema, Timestamp


class ReviewVote(Schema):
    reviewer: str
    label_name: str | None = Field(description="None when the label was deleted since.")


class ReviewItemPublic(Schema):
    id: str
    function_id: str
    kind: str = Field(
        default="capture",
        description="capture (an invoke input), suspect (a labelled sample whose label a "
        "training doubts; annotating it sets that sample's label) or, to admin keys only, gold "
        "(a labelled sample shown blind to a reviewer; reviewer keys see it as a capture).",
    )
    status: str = Field(
        description="pending, annotated, skipped, discarded, or disputed (its reviews disagreed: "
        "an admin key's annotation decides)."
    )
    reviews_needed: int = Field(
        default=1, description="Reviews the item needs before it becomes a sample."
    )
    reviews: list[ReviewVote] | None = Field(
        default=None,
        description="Admin keys only: the votes submitted so far, in order (None to reviewers).",
    )
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
    annotated_by: ReviewerName | None = None


class BulkAnnotation(Body):
    item_id: str
    label_name: str = Field(min_length=1, max_length=200)


class BulkAnnotate(Body):
    items: list[BulkAnnotation] = Field(min_length=1, max_length=1000)
    annotated_by: ReviewerName | None = None


class ReviewCounts(Schema):
    pending: int
    annotated: int
    skipped: int
    discarded: int
    disputed: int


class ReviewClaimBody(Body):
    count: int = Field(default=10, ge=1, le=100, description="Items wanted (fewer may be left).")
    kind: Literal["capture", "suspect"] | None = Field(
        default=None, description="Only items of this kind (every kind when omitted)."
    )


class ReviewRelease(Body):
    item_ids: list[str] | None = Field(
        default=None, max_length=1000, description="Claims to release; all of yours when omitted."
    )


class ClaimedPage(Schema):
    data: list[ReviewItemPublic]
    count: int
    expires_at: Timestamp = Field(
        description="The claims hold until then; claim again to renew them."
    )
    reviewer: str = Field(description="Who the items are reserved to (the key's reviewer).")


class Released(Schema):
    released: int


class CapturePolicyBody(Schema):
    """Capture policy settings (camelCase); omitted settings keep their current values."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class CapturePolicyPublic(Schema):
    policy: dict[str, Any]
    status: dict[str, Any]


class ReviewerPublic(Schema):
    reviewer: str
    votes: int = Field(description="Reviews submitted (gold items aside).")
    gold_votes: int = Field(description="Gold items answered.")
    disputed: int = Field(description="Their reviews on items now disputed.")
    estimated_accuracy: float | None = Field(
        description="Dawid-Skene's estimate of the share of their labels that are right, from "
        "shared and gold items (None with neither)."
    )
    kappa: float | None = Field(
        description="Cohen's kappa of their reviews against the decided labels, on items with "
        "two or more reviews."
    )
    agreement: float | None = Field(description="Raw agreement behind the kappa.")
    gold_accuracy: float | None = Field(description="Share of gold items labelled right.")
    items_per_hour: float | None = Field(
        description="Reviews per hour of active work (gaps over 30 minutes are breaks)."
    )

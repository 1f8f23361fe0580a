"""Samples, their annotations, and the image input that invoke and search share."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from service.schemas.base import Body, ReviewerName, Schema, Timestamp


class Annotation(Body):
    label_name: str = Field(min_length=1, max_length=200)
    annotated_by: ReviewerName | None = Field(
        default=None,
        description="Admin keys only (403 otherwise): who the label history records as giving "
        "this label, e.g. an import's original reviewer. Other keys label as their reviewer.",
    )


class AnnotationPublic(Schema):
    label_name: str
    label_id: str


class ImageInput(Body):
    data: str = Field(
        min_length=1, description="A data URI (data:image/png;base64,...) or an http(s) URL."
    )


class SampleCreate(ImageInput):
    annotation: Annotation | None = None
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    via: Literal["import"] | None = Field(
        default=None,
        description="`import`: the sample comes from a dataset import (`winnow import`), and its "
        "label history says so; omitted: the sample API.",
    )


class SamplePublic(Schema):
    id: str
    function_id: str
    external_id: str | None
    annotation: AnnotationPublic | None
    source: str
    created_at: Timestamp
    annotated_at: Timestamp | None = Field(
        default=None, description="When the current label was set (null: unlabelled)."
    )
    annotated_by: str | None = Field(
        default=None,
        description="Who gave the sample its current label: the people of its last label event "
        "(see its history), comma-separated when several reviewers agreed; null when unlabelled.",
    )


class LabelEventPublic(Schema):
    """One change of a sample's label, as its history records it."""

    at: Timestamp
    label_before: str | None = Field(description="The label before (null: unlabelled).")
    label_after: str | None = Field(
        description="The label after (null: removed, or the sample deleted)."
    )
    actors: list[str] = Field(
        description="Who made the change: a reviewer, or every reviewer whose agreeing votes "
        "made it."
    )
    via: str = Field(
        description="The path: review | consensus | dispute | suspect | sample_api | nyckel | "
        "import."
    )
    review_item_id: str | None = Field(
        default=None, description="The review item behind the change (review paths)."
    )

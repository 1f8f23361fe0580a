"""Samples, their annotations, and the image input that invoke and search share."""

from __future__ import annotations

from pydantic import Field

from service.schemas.base import Body, Schema, Timestamp


class Annotation(Body):
    label_name: str = Field(min_length=1, max_length=200)


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
        description="The reviewer (annotatedBy) of the last review annotation of this sample; "
        "null for labels set by upload or the annotation endpoint.",
    )

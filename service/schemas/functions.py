"""Functions and their labels."""

from __future__ import annotations

from pydantic import Field

from service.schemas.base import Body, Schema, Timestamp


class FunctionCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    labels: list[str] = Field(default_factory=list, max_length=1000)
    backbone: str | None = Field(default=None, max_length=500)
    preset: str | None = Field(
        default=None,
        max_length=100,
        description="imagenet: version 0 is a pretrained ImageNet classifier (the backbone's own, "
        "or CLIP zero-shot over the class names), serving before any label; `labels` then "
        "restricts it to those ImageNet classes, probabilities renormalised.",
    )


class FunctionPublic(Schema):
    id: str
    name: str
    backbone: str
    created_at: Timestamp
    deployed_version: int | None
    pinned: bool
    label_count: int
    sample_count: int
    vector_space: int | None = Field(
        default=None,
        description="The space of the function's stored vectors: null for the backbone's, else "
        "the fine-tuned version whose tower embeds them (the deployed version's space).",
    )


class LabelCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)


class LabelPublic(Schema):
    id: str
    name: str
    description: str | None
    created_at: Timestamp

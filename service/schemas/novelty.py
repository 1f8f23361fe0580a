"""Novelty: new-class proposals and drift."""

from __future__ import annotations

from pydantic import Field

from service.schemas.base import Body, ReviewerName, Schema, Timestamp
from service.schemas.models import ModelVersionPublic
from service.schemas.review import ReviewItemPublic


class ProposalPublic(Schema):
    """Novel review items that cluster together: a label the function may be missing."""

    id: str = Field(description="Stable while the cluster grows (from its oldest item).")
    size: int
    item_ids: list[str] = Field(description="The items, oldest first.")
    image_urls: list[str]
    nearest_label: str | None = Field(
        description="The existing label whose mean embedding is closest to the cluster's."
    )
    nearest_similarity: float | None = Field(
        description="Cosine similarity of the cluster's mean to that label's mean."
    )
    spread: float = Field(description="Mean cosine distance between two of its items.")


class ProposalAccept(Body):
    label_name: str = Field(min_length=1, max_length=200, description="The new label's name.")
    exclude_item_ids: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description="Items of the proposal that do not belong to it (left in review as they are).",
    )
    annotated_by: ReviewerName | None = None


class ProposalAccepted(Schema):
    proposal: ProposalPublic
    label_name: str
    data: list[ReviewItemPublic] = Field(description="The annotated items, now samples.")
    count: int


class NoveltyHour(Schema):
    hour: Timestamp = Field(description="Start of the hour (UTC).")
    invokes: int = Field(
        description="Invokes whose novelty was scored (not those before the function had a "
        "novelty model): the novel share's denominator."
    )
    novel: int = Field(description="Of those, invokes whose novelty passed noveltyThreshold.")
    novel_share: float | None


class DriftPublic(Schema):
    """The share of novel traffic per hour, counted by the process that answered (each replica
    counts its own traffic; the Prometheus counters sum them)."""

    novelty_threshold: float
    novel_share_last_hour: float | None
    hours: list[NoveltyHour]


class FunctionMetricsPublic(ModelVersionPublic):
    drift: DriftPublic

"""Similarity search."""

from __future__ import annotations

from pydantic import Field

from service.schemas.base import Schema
from service.schemas.samples import ImageInput

SEARCH_DEFAULT_COUNT, SEARCH_MAX_COUNT = 10, 100


class SearchQuery(ImageInput):
    count: int = Field(
        default=SEARCH_DEFAULT_COUNT,
        ge=1,
        le=SEARCH_MAX_COUNT,
        description="How many of the nearest labelled samples to return.",
    )


class SearchHit(Schema):
    sample_id: str
    label_name: str
    similarity: float = Field(description="Cosine similarity of the two embeddings, -1 to 1.")
    score: float = Field(
        description="What hits are ranked by: the similarity plus 0.1 x the probability the "
        "deployed model gives the query for this hit's label (the similarity before any model)."
    )

"""Model versions and the training status."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, computed_field, field_validator
from pydantic.alias_generators import to_camel

from service.schemas.base import Schema, Timestamp, camel_keys


class ModelVersionPublic(Schema):
    version: int
    status: str
    backbone: str
    head: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    labels: list[str]
    sample_count: int
    train_seconds: float
    parent_version: int | None
    labels_changed: int | None = Field(
        default=None,
        description="Samples the parent version trained on whose label changed since "
        "(relabelled, e.g. from a mislabel suspect, or unlabelled); null for a first version.",
    )
    decision: dict[str, Any]
    trigger: str
    created_at: Timestamp
    deployed_at: Timestamp | None
    vector_space: int | None = Field(
        default=None,
        description="The vectors the version answers from: null for the backbone's, else the "
        "tuned version whose tower's features they are (its own number for a fine-tuned "
        "version). Deploying a version of another space moves the function's stored vectors.",
    )

    @computed_field(  # type: ignore[prop-decorator]
        description="zero_shot: version 0, built from the label names (and descriptions) by the "
        "backbone's text tower, serving until a trained head beats it; preset: version 0 of a "
        "function created from a preset (a pretrained classifier), serving until a trained head "
        "beats it; trained: a head trained on labelled samples."
    )
    @property
    def kind(self) -> Literal["zero_shot", "preset", "trained"]:
        if self.head == "zero_shot":
            return "zero_shot"
        return "preset" if self.head == "preset" else "trained"

    @field_validator("metrics")
    @classmethod
    def _camel_metric_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Top-level keys in camelCase like the rest of the API, and those of each candidate's
        scores (``cvScores``); label names and a candidate's ``params`` stay as they are."""
        metrics = {to_camel(k): v for k, v in value.items()}
        if isinstance(metrics.get("cvScores"), list):
            metrics["cvScores"] = [
                {to_camel(k): v for k, v in score.items()} if isinstance(score, dict) else score
                for score in metrics["cvScores"]
            ]
        return metrics

    @field_validator("decision")
    @classmethod
    def _camel_decision_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        return camel_keys(value)  # type: ignore[no-any-return]


class TrainingStatusPublic(Schema):
    state: str
    kind: str
    phase: str | None
    progress: float
    trigger: str | None
    started_at: Timestamp | None
    finished_at: Timestamp | None
    last_error: str | None
    last_version: int | None
    deployed_version: int | None
    pinned: bool
    new_annotations: int
    retrain_min_annotations: int
    last_decision: ModelVersionPublic | None

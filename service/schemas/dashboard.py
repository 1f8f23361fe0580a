"""The dashboard: label counts and hourly activity."""

from __future__ import annotations

from pydantic import Field

from service.schemas.base import Schema, Timestamp


class LabelCount(Schema):
    label_name: str
    count: int = Field(description="Labelled samples with this label.")


class ActivityHour(Schema):
    hour: Timestamp = Field(description="Start of the hour (UTC).")
    captured: int = Field(description="Invoke inputs captured for review in this hour.")
    resolved: int = Field(description="Items that left the queue (annotated, skipped, discarded).")
    queue_depth: int = Field(description="Pending items (any kind) at the hour's end (or now).")
    invokes: int = Field(
        description="Invokes judged for capture in this hour by the process that answers, scored "
        "for novelty or not (each replica counts its own traffic, kept 48 hours)."
    )
    scored: int = Field(
        description="Of those, invokes whose novelty was scored (0 before the function has a "
        "novelty model): the novel share's denominator."
    )
    novel: int = Field(description="Of the scored, invokes whose novelty passed noveltyThreshold.")
    capture_rate: float | None = Field(
        description="captured / invokes; null when the invokes counted do not cover the hour's "
        "captures (no count, another replica's traffic, a restart of the answering process)."
    )


class DashboardPublic(Schema):
    label_counts: list[LabelCount]
    unlabelled_samples: int
    activity: list[ActivityHour]

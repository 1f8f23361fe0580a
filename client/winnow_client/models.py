"""Typed results: the service's camelCase JSON as dataclasses with snake_case fields.

Every record keeps the JSON it came from in ``raw``, so a field a newer server adds is readable
before this client learns its name; unknown fields never break parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

T = TypeVar("T")


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass
class Record:
    """Base of every result: ``from_json`` maps camelCase keys onto the dataclass fields."""

    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, kw_only=True)
    # Fields holding nested records: field name -> record class (a list of them for list fields).
    nested: ClassVar[dict[str, type[Record]]] = {}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        names = {f.name: f for f in fields(cls) if f.name != "raw"}
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = snake_case(key)
            if name not in names:
                continue
            if name in cls.nested and value is not None:
                kind = cls.nested[name]
                value = (
                    [kind.from_json(v) for v in value]
                    if isinstance(value, list)
                    else kind.from_json(value)
                )
            elif "datetime" in str(names[name].type) and isinstance(value, str):
                value = datetime.fromisoformat(value)
            values[name] = value
        return cls(**values, raw=data)


@dataclass
class Page(Generic[T]):
    """One page of a list and the total count of the list."""

    data: list[T]
    count: int


@dataclass
class Label(Record):
    id: str
    name: str
    description: str | None = None
    created_at: datetime | None = None


@dataclass
class Function(Record):
    id: str
    name: str
    backbone: str = ""
    created_at: datetime | None = None
    deployed_version: int | None = None
    pinned: bool = False
    label_count: int = 0
    sample_count: int = 0


@dataclass
class Annotation(Record):
    label_name: str
    label_id: str


@dataclass
class Sample(Record):
    id: str
    function_id: str
    external_id: str | None = None
    annotation: Annotation | None = None
    source: str = "upload"
    created_at: datetime | None = None
    annotated_at: datetime | None = None
    # Who gave it its current label: the people of its last label event (comma-separated when
    # several reviewers agreed); None when unlabelled.
    annotated_by: str | None = None
    nested: ClassVar[dict[str, type[Record]]] = {"annotation": Annotation}

    @property
    def label_name(self) -> str | None:
        return self.annotation.label_name if self.annotation else None


@dataclass
class LabelEvent(Record):
    """One change of a sample's label: when, the label before and after (None: unlabelled),
    who, and through what (review, consensus, dispute, suspect, sample_api, nyckel, import)."""

    at: datetime
    label_before: str | None = None
    label_after: str | None = None
    actors: list[str] = field(default_factory=list)
    via: str = ""
    review_item_id: str | None = None


@dataclass
class LabelConfidence(Record):
    label_name: str
    label_id: str
    confidence: float


@dataclass
class CaptureInfo(Record):
    captured: bool
    reason: str | None = None
    score: float | None = None
    item_id: str | None = None
    # Calibrated novelty, 0 to 1 (share of labelled samples less novel); None without a model.
    novelty: float | None = None


@dataclass
class Prediction(Record):
    """An invoke's answer; the label fields are None before the function has any model (the
    input may then be captured for a first label: ``capture.reason == "cold_start"``)."""

    label_name: str | None
    label_id: str | None
    confidence: float | None
    model_version: int | None
    label_confidences: list[LabelConfidence] = field(default_factory=list)
    capture: CaptureInfo | None = None
    nested: ClassVar[dict[str, type[Record]]] = {
        "label_confidences": LabelConfidence,
        "capture": CaptureInfo,
    }


@dataclass
class ModelVersion(Record):
    version: int
    status: str
    backbone: str = ""
    head: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    sample_count: int = 0
    train_seconds: float = 0.0
    parent_version: int | None = None
    # Samples the parent trained on whose label changed since (None for a first version).
    labels_changed: int | None = None
    decision: dict[str, Any] = field(default_factory=dict)
    trigger: str = ""
    created_at: datetime | None = None
    deployed_at: datetime | None = None


@dataclass
class TrainingStatus(Record):
    state: str  # idle | training | failed
    phase: str | None = None
    progress: float = 0.0
    trigger: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_error: str | None = None
    last_version: int | None = None
    deployed_version: int | None = None
    pinned: bool = False
    new_annotations: int = 0
    retrain_min_annotations: int = 0
    last_decision: ModelVersion | None = None
    nested: ClassVar[dict[str, type[Record]]] = {"last_decision": ModelVersion}


@dataclass
class ReviewVote(Record):
    """One reviewer's vote on a review item (label_name None: the label was deleted since)."""

    reviewer: str
    label_name: str | None = None


@dataclass
class ReviewItem(Record):
    id: str
    function_id: str
    # pending | annotated | skipped | discarded | disputed (its reviews disagreed: an admin
    # key's annotation decides)
    status: str
    # capture (an invoke input) | suspect (a labelled sample whose label a training doubts)
    kind: str = "capture"
    reason: str = ""
    score: float = 0.0
    predicted_label: str | None = None
    confidence: float | None = None
    model_version: int | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    label_name: str | None = None
    sample_id: str | None = None
    given_label: str | None = None  # suspects: the label the training doubted
    suggested_label: str | None = None  # suspects: the label the model finds more likely
    annotated_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    image_url: str = ""
    reviews_needed: int = 1  # reviews the item needs before it becomes a sample
    # Admin keys: the votes so far, in order; None to reviewer keys (they never see others' votes).
    reviews: list[ReviewVote] | None = None
    nested: ClassVar[dict[str, type[Record]]] = {"reviews": ReviewVote}


@dataclass
class ClaimedPage(Record):
    """Review items reserved to ``reviewer`` until ``expires_at`` (claim again to renew)."""

    data: list[ReviewItem] = field(default_factory=list)
    count: int = 0
    expires_at: datetime | None = None
    reviewer: str = ""
    nested: ClassVar[dict[str, type[Record]]] = {"data": ReviewItem}


@dataclass
class Reviewer(Record):
    """One reviewer's work and quality on a function; the rates are None without the data."""

    reviewer: str
    votes: int = 0  # reviews submitted (gold items aside)
    gold_votes: int = 0
    disputed: int = 0  # their reviews on items now disputed
    estimated_accuracy: float | None = None  # Dawid-Skene, from shared and gold items
    kappa: float | None = None  # Cohen's kappa against the decided labels
    agreement: float | None = None  # the raw agreement behind the kappa
    gold_accuracy: float | None = None
    items_per_hour: float | None = None


@dataclass
class Proposal(Record):
    """Novel review items clustered together: a label the function may be missing."""

    id: str
    size: int
    item_ids: list[str] = field(default_factory=list)
    image_urls: list[str] = field(default_factory=list)
    nearest_label: str | None = None
    nearest_similarity: float | None = None
    spread: float = 0.0


@dataclass
class AcceptedProposal(Record):
    """An accepted proposal: the label it created and its items, now annotated."""

    proposal: Proposal
    label_name: str
    data: list[ReviewItem] = field(default_factory=list)
    count: int = 0
    nested: ClassVar[dict[str, type[Record]]] = {"proposal": Proposal, "data": ReviewItem}


@dataclass
class ReviewCounts(Record):
    pending: int = 0
    annotated: int = 0
    skipped: int = 0
    discarded: int = 0
    disputed: int = 0


@dataclass
class CapturePolicy(Record):
    """The policy's settings and its live status (budget used, ...), both camelCase as sent."""

    policy: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)


@dataclass
class ApiKey(Record):
    id: str
    scopes: list[str]
    name: str | None = None
    # The person the key labels as (the label history records this name).
    reviewer: str | None = None
    function_id: str | None = None
    rate_limit_per_minute: int | None = None
    created_at: datetime | None = None


@dataclass
class CreatedKey(ApiKey):
    # The key's text, for ``Authorization: Bearer``: the service shows it this once only.
    key: str = ""


@dataclass
class SearchHit(Record):
    sample_id: str
    label_name: str
    similarity: float


@dataclass
class Dashboard(Record):
    """A function's dashboard data: labelled samples per label, and per hour the items captured,
    the items reviewed and the queue depth (nested entries as the service sends them)."""

    label_counts: list[dict[str, Any]] = field(default_factory=list)
    unlabelled_samples: int = 0
    activity: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class UploadReport:
    """What a bulk upload did: new samples, ones already there (by externalId), and failures."""

    created: list[Sample] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # externalIds already present
    failed: list[tuple[str, Exception]] = field(default_factory=list)  # (externalId or #i, error)

    @property
    def uploaded(self) -> int:
        return len(self.created)

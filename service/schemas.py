"""Request and response bodies (JSON in camelCase, as Nyckel's API)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

T = TypeVar("T")


def _utc(value: datetime) -> datetime:
    """Every timestamp winnow stores is UTC; SQLite hands them back without an offset."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


Timestamp = Annotated[datetime, AfterValidator(_utc)]

# Largest ``startIndex`` of a list: beyond it no page exists, and the value still fits a 64-bit
# SQL integer (a larger one would be a database error, not an empty page).
MAX_START_INDEX = 1_000_000_000


class Schema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Body(Schema):
    """Request bodies reject unknown fields, so a typo is a 422 rather than silently ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        _check_storable(data)
        return data


def _check_storable(value: Any) -> None:
    """Text a database can store: PostgreSQL rejects NUL characters, every driver rejects lone
    surrogates (they are not UTF-8). Checked here so both are a 422 on every backend."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key)
            _check_storable(item)
    elif isinstance(value, list):
        for item in value:
            _check_storable(item)


def camel_keys(value: Any) -> Any:
    """Every dict key in camelCase, recursively (for winnow's own nested records)."""
    if isinstance(value, dict):
        return {to_camel(str(k)): camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


class ErrorMessage(Schema):
    """Every error response: a 4xx (or 503) status with a message a person can act on."""

    message: str


class Page(Schema, Generic[T]):
    """List responses: the page of items and the total count."""

    data: list[T]
    count: int


# functions ---------------------------------------------------------------------------------------


class FunctionCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    labels: list[str] = Field(default_factory=list, max_length=1000)
    backbone: str | None = Field(default=None, max_length=500)


class FunctionPublic(Schema):
    id: str
    name: str
    backbone: str
    created_at: Timestamp
    deployed_version: int | None
    pinned: bool
    label_count: int
    sample_count: int


# labels ------------------------------------------------------------------------------------------


class LabelCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)


class LabelPublic(Schema):
    id: str
    name: str
    description: str | None
    created_at: Timestamp


# samples -----------------------------------------------------------------------------------------


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


# training and models -----------------------------------------------------------------------------


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

    @computed_field(  # type: ignore[prop-decorator]
        description="zero_shot: version 0, built from the label names (and descriptions) by the "
        "backbone's text tower, serving until a trained head beats it; trained: a head trained "
        "on labelled samples."
    )
    @property
    def kind(self) -> Literal["zero_shot", "trained"]:
        return "zero_shot" if self.head == "zero_shot" else "trained"

    @field_validator("metrics")
    @classmethod
    def _camel_metric_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Top-level keys in camelCase like the rest of the API (nested label names untouched)."""
        return {to_camel(k): v for k, v in value.items()}

    @field_validator("decision")
    @classmethod
    def _camel_decision_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        return camel_keys(value)  # type: ignore[no-any-return]


# invoke ------------------------------------------------------------------------------------------


class LabelConfidence(Schema):
    label_name: str
    label_id: str
    confidence: float


class CaptureInfo(Schema):
    captured: bool
    reason: str | None
    score: float | None
    item_id: str | None
    novelty: float | None = Field(
        default=None,
        description="Calibrated novelty, 0 to 1: the share of the function's labelled samples "
        "less unlike the labelled data than this input (0.99: more novel than 99% of them); "
        "null while the function has too few labelled samples. Above the capture policy's "
        "noveltyThreshold the input counts as novel traffic and is captured with reason novel.",
    )


class InvokeResult(Schema):
    """An invoke's answer. Before any model exists (no trained head and, without a text tower,
    no zero-shot head) it is 200 with ``labelName``, ``labelId``, ``confidence`` and
    ``modelVersion`` null and ``labelConfidences`` empty; ``capture`` then says whether the
    input was queued for a first label (reason ``cold_start``)."""

    label_name: str | None
    label_id: str | None
    confidence: float | None
    label_confidences: list[LabelConfidence]
    model_version: int | None = Field(
        description="The model version that answered: 0 is the zero-shot head built from the "
        "label names (backbones with a text tower, before a trained head beats it), 1 and up "
        "are trained heads, null means no model yet (cold start)."
    )
    capture: CaptureInfo | None = None


class BatchInvokeInput(Body):
    items: list[ImageInput] = Field(
        min_length=1,
        description="The images, answered in this order (at most --max-batch-invoke of them).",
    )


class InvokeEntryError(Schema):
    """One batch entry that failed on its own (a bad image); the other entries still answer."""

    status: int = Field(
        ge=400, le=599, description="The status single invoke would answer for this image."
    )
    message: str


class BatchInvokeResult(Schema):
    data: list[InvokeResult | InvokeEntryError]


# similarity search -------------------------------------------------------------------------------

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


class Health(Schema):
    status: str
    backbone: str
    backbones_loaded: list[str]
    database: str


# review queue ------------------------------------------------------------------------------------


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


class TrainingStatusPublic(Schema):
    state: str
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


# dashboard ---------------------------------------------------------------------------------------


class LabelCount(Schema):
    label_name: str
    count: int = Field(description="Labelled samples with this label.")


class ActivityHour(Schema):
    hour: Timestamp = Field(description="Start of the hour (UTC).")
    captured: int = Field(description="Invoke inputs captured for review in this hour.")
    resolved: int = Field(description="Items that left the queue (annotated, skipped, discarded).")
    queue_depth: int = Field(description="Pending items (any kind) at the hour's end (or now).")
    invokes: int = Field(
        description="Invokes scored for novelty in this hour by the process that answers (each "
        "replica counts its own traffic, kept 48 hours; 0 before the function has a novelty model)."
    )
    novel: int = Field(description="Of those, invokes whose novelty passed noveltyThreshold.")
    capture_rate: float | None = Field(
        description="captured / invokes; null when the invokes counted do not cover the hour's "
        "captures (no count, another replica's traffic, captures before a novelty model)."
    )


class DashboardPublic(Schema):
    label_counts: list[LabelCount]
    unlabelled_samples: int
    activity: list[ActivityHour]


# novelty: new-class proposals and drift ----------------------------------------------------------


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
    annotated_by: str | None = Field(default=None, max_length=200)


class ProposalAccepted(Schema):
    proposal: ProposalPublic
    label_name: str
    data: list[ReviewItemPublic] = Field(description="The annotated items, now samples.")
    count: int


class NoveltyHour(Schema):
    hour: Timestamp = Field(description="Start of the hour (UTC).")
    invokes: int = Field(description="Invokes whose novelty was scored.")
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

"""SQLModel tables: functions, labels, samples, model versions, review items, review claims and
the label history."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, overload

import numpy as np
from sqlalchemy import JSON, Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


def new_id(prefix: str) -> str:
    """Opaque, unguessable ids with a readable prefix (``function_3fa9...``)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """A timestamp read back from the database, zoned: SQLite hands them back without a zone, and
    every timestamp winnow writes is UTC (None stays None)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def vector_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float32)


class Function(SQLModel, table=True):
    """A classification function; it pins the backbone its vectors come from."""

    id: str = Field(default_factory=lambda: new_id("function"), primary_key=True)
    name: str = Field(index=True)
    backbone: str
    created_at: datetime = Field(default_factory=utcnow)
    # The version every invoke is served by; None until the first model is deployed.
    deployed_version: int | None = None
    # A pinned function keeps its deployed version: automatic retraining does not promote.
    pinned: bool = False
    # Count of annotation events (new labelled sample or label change); retraining compares it with
    # the value recorded by the last training.
    annotation_counter: int = 0
    capture_policy: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # Invoke vectors ever written into the function's traffic sample: the next slot of its ring
    # (store.traffic).
    traffic_written: int = 0
    # The space of every vector stored for the function (samples, review items, traffic): the
    # tuned version whose tower embeds them, or None for the backbone's own vectors. It changes
    # with the deployed version, in one transaction (service.spaces).
    vector_space: int | None = None


class Label(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("function_id", "name"),)

    id: str = Field(default_factory=lambda: new_id("label"), primary_key=True)
    function_id: str = Field(foreign_key="function.id", index=True, ondelete="CASCADE")
    name: str
    description: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Sample(SQLModel, table=True):
    """An image (by blob digest) with its embedding and an optional label."""

    __table_args__ = (UniqueConstraint("function_id", "external_id"),)

    id: str = Field(default_factory=lambda: new_id("sample"), primary_key=True)
    function_id: str = Field(foreign_key="function.id", index=True, ondelete="CASCADE")
    blob: str = Field(index=True)
    embedding: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    label_id: str | None = Field(default=None, foreign_key="label.id", index=True)
    external_id: str | None = None
    # upload | review
    source: str = "upload"
    # Review queue item this sample was created from, when source == "review".
    review_item_id: str | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    annotated_at: datetime | None = None
    # When the sample's label last went from one label to another (or to none): the model
    # history counts these changes between versions.
    label_changed_at: datetime | None = None
    # The label a reviewer confirmed (or set) on a mislabel suspect: while the sample keeps it,
    # it is not suggested as a suspect again.
    confirmed_label_id: str | None = None


class ModelVersion(SQLModel, table=True):
    """One trained head; ``status`` says whether it was deployed or rejected, and why."""

    __table_args__ = (UniqueConstraint("function_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    function_id: str = Field(foreign_key="function.id", index=True, ondelete="CASCADE")
    version: int
    # deployed (serving now) | retired (served before) | rejected (never served) | trained
    status: str = "trained"
    backbone: str
    head: str
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    labels: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    sample_count: int = 0
    annotation_counter: int = 0
    train_seconds: float = 0.0
    parent_version: int | None = None
    # Samples whose label changed (relabelled or unlabelled) since the parent version was trained.
    labels_changed: int | None = None
    decision: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    trigger: str = "manual"
    created_at: datetime = Field(default_factory=utcnow)
    deployed_at: datetime | None = None
    # The vector space its head answers from (see Function.vector_space): a tuned version's own
    # number, that of the tuned version whose features a head was trained on, or None.
    vector_space: int | None = None
    # SHA-256 (hex) of the stored artifact's bytes, checked before it is unpickled; None on rows
    # an older winnow wrote: those artifacts are not loaded (train again to replace them).
    artifact_sha256: str | None = None


class ReviewItem(SQLModel, table=True):
    """An item for human review: an invoke input (kind ``capture``) or a labelled sample whose
    label looks wrong (kind ``suspect``, with ``sample_id`` set from the start)."""

    id: str = Field(default_factory=lambda: new_id("item"), primary_key=True)
    function_id: str = Field(foreign_key="function.id", index=True, ondelete="CASCADE")
    # capture | suspect | gold (a labelled sample shown blind to measure a reviewer)
    kind: str = Field(default="capture", index=True)
    # Suspects: the sample's label when it was suspected, and the label the model suggests.
    given_label: str | None = None
    suggested_label: str | None = None
    blob: str = Field(index=True)
    embedding: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # pending | annotated | skipped | discarded | disputed (reviews disagreed: an admin decides)
    status: str = Field(default="pending", index=True)
    # How many reviewers must label the item before it becomes a sample (the policy's
    # reviewsPerItem, or 2 for an item drawn for overlap); gold items need the one reviewer.
    reviews_needed: int = 1
    predicted_label: str | None = None
    confidence: float | None = None
    model_version: int | None = None
    reason: str
    score: float
    scores: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    label_id: str | None = Field(default=None, foreign_key="label.id")
    sample_id: str | None = None
    annotated_by: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ReviewClaim(SQLModel, table=True):
    """One reviewer's hold on one of an item's review slots, then their vote.

    An item has ``reviews_needed`` slots; the unique (item, slot) pair lets exactly one reviewer
    hold a slot however many claim at once, and (item, reviewer) keeps a reviewer to one slot per
    item. A claim without a vote past ``expires_at`` may be taken over by another reviewer. Rows
    stay after the vote: they are the item's reviews.
    """

    __table_args__ = (
        UniqueConstraint("item_id", "slot"),
        UniqueConstraint("item_id", "reviewer"),
    )

    id: int | None = Field(default=None, primary_key=True)
    function_id: str = Field(foreign_key="function.id", index=True, ondelete="CASCADE")
    item_id: str = Field(foreign_key="reviewitem.id", index=True, ondelete="CASCADE")
    slot: int
    reviewer: str = Field(index=True)
    claimed_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    # The vote (None until submitted, or when the label was deleted since).
    label_id: str | None = Field(default=None, foreign_key="label.id", ondelete="SET NULL")
    voted_at: datetime | None = None


class LabelEvent(SQLModel, table=True):
    """One change of a sample's label, append-only: who, when, the label before and after, and
    through what path. Rows name labels and people as text and outlive the sample, the label and
    the key that made them (they go with their function)."""

    id: int | None = Field(default=None, primary_key=True)
    function_id: str = Field(foreign_key="function.id", index=True, ondelete="CASCADE")
    sample_id: str = Field(index=True)
    at: datetime = Field(default_factory=utcnow)
    label_before: str | None = None
    label_after: str | None = None
    # The people behind the change: one name, or each reviewer whose agreeing votes made it.
    actors: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # review | consensus | dispute | suspect | sample_api | nyckel | import
    via: str
    review_item_id: str | None = None

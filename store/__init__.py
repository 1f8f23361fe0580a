"""Shared persistence: SQLModel tables, the engine, and the content-addressed blob store."""

from store.blobs import BlobNotFound, BlobStore, S3BlobStore
from store.db import make_engine, session_scope, shared_lock
from store.keys import ApiKey, list_keys
from store.labels import (
    MAX_REVIEWER_NAME,
    EmptyLabelName,
    InvalidLabelName,
    InvalidReviewerName,
    LabelChange,
    LabelNotAllowed,
    Via,
    annotation_label,
    find_label,
    get_or_create_label,
    label_sample,
    normalize_label_name,
    normalize_reviewer_name,
    record_deletion,
    unlabel_sample,
)
from store.migrate import SchemaTooNewError
from store.novel_marks import NovelMark
from store.objects import ObjectNotFound, ObjectStoreUnavailable, S3Objects, parse_s3_url
from store.schema import SchemaUpgradeError
from store.spaces import SpaceMoved, check_space, lock_space
from store.tables import (
    Function,
    Label,
    LabelEvent,
    ModelVersion,
    ReviewClaim,
    ReviewItem,
    Sample,
    as_utc,
    new_id,
    utcnow,
    vector_from_bytes,
    vector_to_bytes,
)
from store.traffic import TrafficVector, read_traffic, write_traffic

__all__ = [
    "annotation_label",
    "as_utc",
    "ApiKey",
    "BlobNotFound",
    "BlobStore",
    "EmptyLabelName",
    "Function",
    "InvalidLabelName",
    "InvalidReviewerName",
    "Label",
    "LabelEvent",
    "LabelChange",
    "LabelNotAllowed",
    "MAX_REVIEWER_NAME",
    "ModelVersion",
    "NovelMark",
    "ObjectNotFound",
    "ObjectStoreUnavailable",
    "ReviewClaim",
    "ReviewItem",
    "S3BlobStore",
    "S3Objects",
    "Sample",
    "SchemaTooNewError",
    "SchemaUpgradeError",
    "find_label",
    "get_or_create_label",
    "normalize_label_name",
    "normalize_reviewer_name",
    "label_sample",
    "list_keys",
    "make_engine",
    "new_id",
    "parse_s3_url",
    "record_deletion",
    "session_scope",
    "read_traffic",
    "SpaceMoved",
    "check_space",
    "lock_space",
    "shared_lock",
    "TrafficVector",
    "write_traffic",
    "unlabel_sample",
    "utcnow",
    "vector_from_bytes",
    "vector_to_bytes",
    "Via",
]

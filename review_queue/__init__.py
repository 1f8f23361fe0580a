"""Review queue: captured items, their states, and turning an annotation into a sample."""

from review_queue.errors import (
    InvalidFilter,
    InvalidTransition,
    ItemNotFound,
    LabelNotAllowed,
    ReviewError,
)
from review_queue.queue import (
    KINDS,
    STATUSES,
    Annotated,
    ItemKind,
    annotate,
    capture_times,
    counts,
    create_item,
    discard,
    follow_relabel,
    get_item,
    holds_image,
    list_items,
    lock_captures,
    skip,
)
from review_queue.suspects import Suspect, drop_open_suspects, queue_suspects

__all__ = [
    "KINDS",
    "STATUSES",
    "Annotated",
    "InvalidFilter",
    "InvalidTransition",
    "ItemKind",
    "ItemNotFound",
    "LabelNotAllowed",
    "ReviewError",
    "Suspect",
    "annotate",
    "capture_times",
    "counts",
    "create_item",
    "discard",
    "drop_open_suspects",
    "follow_relabel",
    "get_item",
    "holds_image",
    "list_items",
    "lock_captures",
    "queue_suspects",
    "skip",
]

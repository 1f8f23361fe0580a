"""Review queue: captured items, their states, and turning an annotation into a sample."""

from review_queue.errors import InvalidTransition, ItemNotFound, LabelNotAllowed, ReviewError
from review_queue.queue import (
    STATUSES,
    Annotated,
    annotate,
    capture_times,
    counts,
    create_item,
    discard,
    get_item,
    holds_image,
    list_items,
    lock_captures,
    skip,
)

__all__ = [
    "STATUSES",
    "Annotated",
    "InvalidTransition",
    "ItemNotFound",
    "LabelNotAllowed",
    "ReviewError",
    "annotate",
    "capture_times",
    "counts",
    "create_item",
    "discard",
    "get_item",
    "holds_image",
    "list_items",
    "lock_captures",
    "skip",
]

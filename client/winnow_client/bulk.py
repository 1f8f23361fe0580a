"""The pure parts of bulk work that both clients share: what to upload, what counts as one item's
failure (reported, the rest go on) rather than the whole run's (raised), and batching."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, TypeVar

from winnow_client.errors import WinnowError
from winnow_client.images import ImageLike, image_bytes

T = TypeVar("T")

# Errors that concern one image (corrupt, unsupported, too large, an externalId already used for
# other content); any other status (401, 403, 404 function, 5xx after retries) stops the run.
ITEM_STATUSES = frozenset({400, 409, 413, 415, 422})


class SampleUpload(NamedTuple):
    """One sample to upload; ``external_id`` makes reruns skip it (derived from the bytes and the
    label when not given); ``annotated_by`` (admin keys only) names who gave the label, e.g. the
    reviewer an export's manifest records."""

    image: ImageLike
    label: str | None = None
    external_id: str | None = None
    annotated_by: str | None = None


def with_external_id(item: SampleUpload | tuple[ImageLike, str | None]) -> SampleUpload:
    """The item with an externalId: its own, else a digest of its bytes and label."""
    upload = item if isinstance(item, SampleUpload) else SampleUpload(*item)
    if upload.external_id is not None:
        return upload
    if isinstance(upload.image, str) and upload.image.startswith(("http://", "https://")):
        return upload  # a URL: the service fetches it, nothing to digest here
    digest = hashlib.sha256(image_bytes(upload.image) + b"\0" + str(upload.label).encode())
    return upload._replace(external_id="sha256:" + digest.hexdigest())


def item_label(upload: SampleUpload, index: int) -> str:
    """How a report names an item: its externalId, else its position."""
    return upload.external_id or f"#{index}"


def is_item_failure(exc: BaseException) -> bool:
    """Whether ``exc`` concerns one item only (reported, the upload goes on)."""
    if isinstance(exc, WinnowError):
        return exc.status in ITEM_STATUSES
    return isinstance(exc, OSError | TypeError | ValueError)


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    if size < 1:
        raise ValueError("batch size must be at least 1")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def pending_uploads(
    items: Iterable[SampleUpload | tuple[ImageLike, str | None]], present: set[str]
) -> tuple[list[SampleUpload], list[str]]:
    """Split items into those to upload and the externalIds already present."""
    todo: list[SampleUpload] = []
    skipped: list[str] = []
    for item in items:
        try:
            upload = with_external_id(item)
        except OSError:  # unreadable: uploading it fails and is reported with the others
            upload = item if isinstance(item, SampleUpload) else SampleUpload(*item)
        if upload.external_id is not None and upload.external_id in present:
            skipped.append(upload.external_id)
        else:
            todo.append(upload)
    return todo, skipped

"""Review items' standing in new-class proposals: marked "none of these labels", or dismissed."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from store.tables import utcnow


class NovelMark(SQLModel, table=True):
    """One review item's proposal state; items without a row are neither marked nor dismissed.

    Novel captures are found by their capture reason; a reviewer's "none of these labels" adds
    an item that was captured for another reason. A dismissed item never joins a proposal again.
    """

    item_id: str = Field(primary_key=True)
    function_id: str = Field(foreign_key="function.id", index=True, ondelete="CASCADE")
    # A reviewer said the item belongs to none of the function's labels.
    marked_novel: bool = False
    # The item was in a proposal a reviewer dismissed.
    dismissed: bool = False
    updated_at: datetime = Field(default_factory=utcnow)

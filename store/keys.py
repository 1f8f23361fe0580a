"""API keys: the stored half of a key (its hash, never the key itself), its tenant and scopes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, Session, SQLModel, col, select

from store.tables import utcnow


class ApiKey(SQLModel, table=True):
    """A bearer key; ``function_id`` None means it acts on every function."""

    # Non-secret id, also embedded in the key text so a request finds its row without a scan.
    id: str = Field(primary_key=True)
    name: str | None = None
    # The key's tenant; deleting the function deletes its keys.
    function_id: str | None = Field(
        default=None, foreign_key="function.id", index=True, ondelete="CASCADE"
    )
    # The reviewer this key labels as: annotations through it record this name (several keys may
    # share one, e.g. a person's laptop and phone). None: the key's name, or for admin keys the
    # request's free-text annotatedBy.
    reviewer: str | None = Field(default=None, index=True)
    # Subset of invoke | annotate | admin.
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Hex SHA-256 of the whole key text.
    secret_hash: str
    # Requests per minute allowed for this key (None: unlimited).
    rate_limit_per_minute: int | None = None
    created_at: datetime = Field(default_factory=utcnow)


def list_keys(*, session: Session, function_id: str | None = None) -> list[ApiKey]:
    """Every key, or only those of ``function_id``, oldest first."""
    query = select(ApiKey).order_by(col(ApiKey.created_at))
    if function_id is not None:
        query = query.where(ApiKey.function_id == function_id)
    return list(session.exec(query).all())

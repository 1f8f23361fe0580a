"""/v1/keys: API keys and their scopes (admin scope only)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response, status
from pydantic import Field

from api.deps import AdminKey, RuntimeDep
from service import keys as service
from service.auth import SCOPES, Scope
from service.schemas import Body, Page, ReviewerName, Schema

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyCreate(Body):
    # The key's function; omitted: every function (global keys only).
    function_id: str | None = Field(default=None, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES))
    name: str | None = Field(default=None, max_length=200)
    reviewer: ReviewerName | None = Field(
        default=None,
        description="The person this key labels as: the label history and reviewer counts "
        "record this name (several keys may share it). Omitted: the key's name, else its id.",
    )
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)


class KeyPublic(Schema):
    """A key without its text or hash (those are never shown again)."""

    id: str
    name: str | None
    reviewer: str | None
    function_id: str | None
    scopes: list[str]
    rate_limit_per_minute: int | None
    created_at: datetime


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself, for `Authorization: Bearer`: shown only once.")


@router.post("", status_code=status.HTTP_201_CREATED)
def create_key(body: KeyCreate, response: Response, rt: RuntimeDep, caller: AdminKey) -> KeyCreated:
    """Create a key; its text is in this response only (it is stored hashed)."""
    row, key = service.create_key(rt, caller, **body.model_dump())
    response.headers["Cache-Control"] = "no-store"
    return KeyCreated.model_validate({**row.model_dump(), "key": key})


@router.get("")
def list_keys(rt: RuntimeDep, caller: AdminKey) -> Page[KeyPublic]:
    rows = service.visible_keys(rt, caller)
    data = [KeyPublic.model_validate(row, from_attributes=True) for row in rows]
    return Page(data=data, count=len(data))


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_key(key_id: str, rt: RuntimeDep, caller: AdminKey) -> None:
    service.delete_key(rt, caller, key_id)

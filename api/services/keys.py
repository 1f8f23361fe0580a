"""API key management within the caller's reach: create (the key text is returned once), list,
delete. A function-scoped admin key manages only its own function's keys."""

from __future__ import annotations

from api.auth import ADMIN_KEY_ID, SCOPES, Principal, hash_key, new_key
from api.errors import Conflict, NotFound
from api.runtime import Runtime
from api.services.functions import get_function
from store import ApiKey, list_keys, new_id, session_scope


def create_key(
    rt: Runtime,
    principal: Principal,
    *,
    function_id: str | None,
    scopes: list[str],
    name: str | None = None,
    rate_limit_per_minute: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key for ``function_id`` (None: every function); returns its row and its text."""
    if function_id is None:
        principal.require_every_function("create keys for every function")
    else:
        principal.ensure_function(function_id)
    with session_scope(rt.engine) as session:
        if function_id is not None:
            get_function(session, function_id)
        key_id = new_id("key")
        key = new_key(key_id)
        row = ApiKey(
            id=key_id,
            name=name,
            function_id=function_id,
            scopes=[s for s in SCOPES if s in scopes],
            secret_hash=hash_key(key),
            rate_limit_per_minute=rate_limit_per_minute,
        )
        session.add(row)
    return row, key


def visible_keys(rt: Runtime, principal: Principal) -> list[ApiKey]:
    with session_scope(rt.engine) as session:
        return list_keys(session=session, function_id=principal.function_id)


def delete_key(rt: Runtime, principal: Principal, key_id: str) -> None:
    """Delete a key; it stops working at once (every request looks its row up)."""
    with session_scope(rt.engine) as session:
        row = session.get(ApiKey, key_id)
        # A function-scoped caller sees only its function's keys; others look missing.
        if row is None or principal.function_id not in (None, row.function_id):
            raise NotFound(f"API key {key_id} not found")
        if row.id == ADMIN_KEY_ID:
            raise Conflict("the generated admin key cannot be deleted; set admin_key to replace it")
        session.delete(row)
    rt.rate_limits.forget(key_id)

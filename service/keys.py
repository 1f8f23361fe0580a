"""API key management within the caller's reach: create (the key text is returned once), list,
delete. A function-scoped admin key manages only its own function's keys, and no key creates a
key broader or less limited than itself."""

from __future__ import annotations

from service.auth import ADMIN_KEY_ID, SCOPES, Principal, hash_key, new_key
from service.errors import Conflict, Forbidden, NotFound
from service.functions import get_function
from service.runtime import Runtime
from store import ApiKey, list_keys, new_id, normalize_reviewer_name, session_scope


def create_key(
    rt: Runtime,
    principal: Principal,
    *,
    function_id: str | None,
    scopes: list[str],
    name: str | None = None,
    reviewer: str | None = None,
    rate_limit_per_minute: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key for ``function_id`` (None: every function); returns its row and its text.
    ``reviewer``: the person the label history records for its label changes (several keys may
    share one); :class:`store.InvalidReviewerName` for a name the naming rules refuse."""
    if reviewer is not None:
        reviewer = normalize_reviewer_name(reviewer)
    if function_id is None:
        principal.require_every_function("create keys for every function")
    else:
        principal.ensure_function(function_id)
    _require_no_broader(principal, scopes=scopes, rate_limit_per_minute=rate_limit_per_minute)
    with session_scope(rt.engine) as session:
        if function_id is not None:
            get_function(session, function_id)
        key_id = new_id("key")
        key = new_key(key_id)
        row = ApiKey(
            id=key_id,
            name=name,
            reviewer=reviewer,
            function_id=function_id,
            scopes=[s for s in SCOPES if s in scopes],
            secret_hash=hash_key(key),
            rate_limit_per_minute=rate_limit_per_minute,
        )
        session.add(row)
    return row, key


def _require_no_broader(
    principal: Principal, *, scopes: list[str], rate_limit_per_minute: int | None
) -> None:
    """403 unless the new key's scopes are among the caller's and its rate limit is no looser.

    Its function is checked before (a function-scoped caller creates keys for its own function
    only); a key has no other restriction. Otherwise a limited key could mint an unlimited one.
    """
    broader = []
    extra = [s for s in SCOPES if s in scopes and s not in principal.scopes]
    if extra:
        broader.append(f"scopes {extra} that the calling key lacks")
    own = principal.rate_limit_per_minute
    if own is not None and rate_limit_per_minute is None:
        broader.append(f"no rate limit while the calling key has {own} requests/minute")
    elif own is not None and rate_limit_per_minute is not None and rate_limit_per_minute > own:
        broader.append(
            f"a rate limit of {rate_limit_per_minute} requests/minute, above the calling key's "
            f"{own}"
        )
    if broader:
        raise Forbidden(
            "an API key cannot create a key broader than itself; the new key would have "
            + " and ".join(broader)
        )


def visible_keys(rt: Runtime, principal: Principal) -> list[ApiKey]:
    with session_scope(rt.engine) as session:
        return list_keys(session=session, function_id=principal.function_id)


def delete_key(rt: Runtime, principal: Principal, key_id: str) -> None:
    """Delete a key; it stops working at once (every request looks its row up). The label
    history names people as text, so its reviewer's history stays."""
    with session_scope(rt.engine) as session:
        row = session.get(ApiKey, key_id)
        # A function-scoped caller sees only its function's keys; others look missing.
        if row is None or principal.function_id not in (None, row.function_id):
            raise NotFound(f"API key {key_id} not found")
        if row.id == ADMIN_KEY_ID:
            raise Conflict("the generated admin key cannot be deleted; set admin_key to replace it")
        session.delete(row)
    rt.rate_limits.forget(key_id)

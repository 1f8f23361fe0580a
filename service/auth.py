"""API keys: generating, hashing and verifying bearer tokens, and what a verified key may do.

Scopes name route groups and failures are 401/403/404 responses; the table is ``store.ApiKey``.

Key text is ``wn_<id>_<secret>``: the id part names the row (not secret, so a request finds its
row by primary key instead of hashing against every row), the secret is 32 random bytes in hex.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from service.errors import Forbidden, NotFound, Unauthorized
from store import ApiKey, session_scope

log = logging.getLogger("winnow")

Scope = Literal["invoke", "annotate", "admin"]
SCOPES: tuple[str, ...] = get_args(Scope)
# Row of the generated admin key (a setting's admin key is never stored).
ADMIN_KEY_ID = "key_admin"
_PREFIX = "wn"


def hash_key(key: str) -> str:
    """Hex SHA-256 of the key text.

    A plain fast hash is enough because generated keys carry 256 random bits: nobody can guess a
    preimage, so the slow salted hashes meant for low-entropy passwords (bcrypt, argon2) would only
    add milliseconds to every invoke. An operator-chosen ``admin_key`` may be weak, but it is
    never stored, only compared in memory.
    """
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(key_id: str) -> str:
    """Fresh key text for the row ``key_id`` (``key_<hex>`` -> ``wn_<hex>_<64 hex>``)."""
    return f"{_PREFIX}_{key_id.removeprefix('key_')}_{secrets.token_hex(32)}"


def key_id_of(key: str) -> str | None:
    """The row id embedded in a key's text, or None if it does not look like one of ours."""
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != _PREFIX or not parts[1].isalnum():
        return None
    return f"key_{parts[1]}"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a verified key's tenant (None: every function) and scopes."""

    key_id: str
    function_id: str | None
    scopes: frozenset[str]
    rate_limit_per_minute: int | None = None
    # The reviewer the key labels as, and the key's own name.
    reviewer: str | None = None
    name: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def actor(self, annotated_by: str | None = None) -> str:
        """Who a label change through this key is recorded as: for an admin key the request's
        free-text ``annotatedBy`` when given (imports carry the original reviewers), else the
        key's reviewer, else its name, else its id.

        Raises:
            Forbidden: a key without the admin scope named someone in ``annotatedBy``; it
                labels as itself.
        """
        if annotated_by is not None:
            if not self.is_admin:
                raise Forbidden(
                    "annotatedBy is for admin keys and imports; this key labels as "
                    f"{self._own_name()!r}"
                )
            return annotated_by
        return self._own_name()

    def _own_name(self) -> str:
        return self.reviewer or self.name or self.key_id

    def require(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise Forbidden(
                f"this API key lacks the {scope!r} scope",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )

    def require_every_function(self, action: str) -> None:
        """For actions outside any one function (creating functions): global keys only."""
        if self.function_id is not None:
            raise Forbidden(f"a function-scoped API key cannot {action}")

    def ensure_function(self, function_id: str) -> None:
        """Another tenant's function looks exactly like a missing one (no existence leak)."""
        if self.function_id is not None and self.function_id != function_id:
            raise NotFound(f"function {function_id} not found")


ADMIN = Principal(key_id=ADMIN_KEY_ID, function_id=None, scopes=frozenset(SCOPES), name="admin")


def _unauthorized(message: str, error: str | None = None) -> Unauthorized:
    challenge = 'Bearer realm="winnow"' + (f', error="{error}"' if error else "")
    return Unauthorized(message, headers={"WWW-Authenticate": challenge})


class Authenticator:
    """Verifies bearer keys against the admin key and the stored key hashes."""

    def __init__(self, engine: Engine, admin_key: str = "") -> None:
        self._engine = engine
        # Hash of the admin key: the setting's, or after ``ensure_admin_key`` the stored one.
        self._admin_hash: str | None = hash_key(admin_key) if admin_key else None

    def ensure_admin_key(self, key_file: Path) -> None:
        """Without an ``admin_key`` setting, use the stored admin key or generate one.

        A generated key is stored only as a hash; its text is logged once and written to
        ``key_file`` (mode 0600) so the operator can read it.
        """
        if self._admin_hash is not None:
            log.info("admin key: from the admin_key setting")
            return
        with session_scope(self._engine) as session:
            stored = session.get(ApiKey, ADMIN_KEY_ID)
            if stored is not None:
                self._admin_hash = stored.secret_hash
                log.info("admin key: the one generated at first start (see %s)", key_file)
                return
            key = new_key(ADMIN_KEY_ID)
            row = ApiKey(
                id=ADMIN_KEY_ID,
                name="admin (generated at first start)",
                scopes=list(SCOPES),
                secret_hash=hash_key(key),
            )
            session.add(row)
            try:
                session.flush()  # claims the row first: a replica starting at the same time fails
            except IntegrityError:
                session.rollback()
                stored = session.get(ApiKey, ADMIN_KEY_ID)
                if stored is None:
                    raise
                self._admin_hash = stored.secret_hash
                return
            # Written before the commit: a crash in between leaves no stored key, so the next
            # start generates a new one and rewrites the file.
            _write_private(key_file, key + "\n")
        self._admin_hash = row.secret_hash
        log.warning(
            "generated the admin key (shown once; also in %s, mode 0600): %s", key_file, key
        )

    def authenticate(self, key: str | None) -> Principal:
        """The principal for ``key``; 401 if it is missing, unknown or deleted."""
        if not key:
            raise _unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
        digest = hash_key(key)
        # Constant-time comparisons, so response timing does not reveal how much of a hash matched.
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return ADMIN
        key_id = key_id_of(key)
        if key_id is not None and key_id != ADMIN_KEY_ID:
            # A Core read, not an ORM session: every invoke with an app's key makes it.
            with self._engine.connect() as connection:
                row = connection.execute(select(ApiKey).where(col(ApiKey.id) == key_id)).first()
            if row is not None and hmac.compare_digest(digest, row.secret_hash):
                return Principal(
                    key_id=key_id,
                    function_id=row.function_id,
                    scopes=frozenset(row.scopes),
                    rate_limit_per_minute=row.rate_limit_per_minute,
                    reviewer=row.reviewer,
                    name=row.name,
                )
        raise _unauthorized("invalid API key", "invalid_token")


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file created with mode 0600 (never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # O_EXCL below: the mode applies only to a newly created file
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())

"""Versioned model artifacts on disk, written atomically.

Layout: ``<root>/<function_id>/v<version>.joblib``, each file a joblib pickle of
``{"format": 1, "head": head, "meta": meta}``. A save writes a temporary file in the same
directory, fsyncs it, renames it over the final name with ``os.replace`` and fsyncs the directory,
so after a crash the final name holds either nothing or a complete artifact, never a torn one.
Leftover temporary files are invisible to :meth:`ModelStore.versions` and removed by
:meth:`ModelStore.sweep_temp_files`.

:class:`ObjectModelStore` keeps the same artifacts in S3-compatible object storage
(``models/<function_id>/v<version>.joblib``), where a put is visible whole or not at all, so that
replicas with separate data dirs share them.

Artifacts are pickles, and unpickling runs code: a save returns the artifact's SHA-256 digest,
which the caller records (the ``ModelVersion`` row), and a load reads the bytes once, checks them
against that digest and only then unpickles those same bytes from memory. A file changed after
winnow wrote it is refused unread (:class:`ArtifactTampered`), and one without a recorded digest
is not loaded at all (:class:`ArtifactUnverified`). Directories are created ``0700`` and files
``0600``: artifacts are the owner's alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Protocol

import joblib

from learner.errors import (
    ArtifactCorrupt,
    ArtifactExists,
    ArtifactNotFound,
    ArtifactTampered,
    ArtifactUnverified,
    InvalidFunctionId,
)

log = logging.getLogger(__name__)

ARTIFACT_FORMAT = 1
_FUNCTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ARTIFACT_NAME = re.compile(r"^v(\d+)\.joblib$")
_TEMP_PREFIX = ".tmp-"


class ModelStore:
    """Saves and loads trained heads per function and version, in a local directory.

    Args:
        root: directory holding one sub-directory per function (created if missing).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, function_id: str, version: int) -> Path:
        """Where version ``version`` of ``function_id`` lives (whether or not it exists)."""
        return self._function_dir(function_id) / _artifact_name(version)

    def save(
        self,
        function_id: str,
        version: int,
        head: Any,
        meta: dict[str, Any],
        *,
        overwrite: bool = False,
    ) -> str:
        """Durably write ``head`` and ``meta`` as one artifact and return its SHA-256 digest
        (hex), which :meth:`load` needs to load it back.

        Versions are immutable: saving an existing version raises unless ``overwrite``. The
        existence check assumes a single writer per function (the retrain leader).

        Args:
            function_id: the function the head belongs to (letters, digits, ``_.-``).
            version: version number, usually one more than the latest in :meth:`versions`.
            head: a fitted head (anything picklable with ``predict_proba`` and ``classes_``).
            meta: JSON-like metadata stored next to the head (metrics, candidate, labels...).
            overwrite: replace an existing artifact of the same version.

        Raises:
            ArtifactExists: the version exists and ``overwrite`` is false.
        """
        final = self.path(function_id, version)
        if final.exists() and not overwrite:
            raise ArtifactExists(f"model {function_id} v{version} already exists")
        directory = final.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = _serialized(head, meta)
        descriptor, temp_name = tempfile.mkstemp(
            dir=directory, prefix=f"{_TEMP_PREFIX}{final.name}.", suffix=".part"
        )
        try:
            with os.fdopen(descriptor, "wb") as temp_file:
                temp_file.write(data)
                temp_file.flush()
                os.fsync(temp_file.fileno())
            os.replace(temp_name, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise
        _fsync_directory(directory)
        return _sha256(data)

    def load(
        self, function_id: str, version: int, *, sha256: str | None
    ) -> tuple[Any, dict[str, Any]]:
        """Read back ``(head, meta)`` of one version, verified against its recorded digest.

        Args:
            function_id: the function the head belongs to.
            version: the version to load.
            sha256: the digest :meth:`save` returned for it; None (nothing was recorded) refuses.

        Raises:
            ArtifactNotFound: no such version is stored.
            ArtifactTampered: the file's digest is not ``sha256`` (it was not unpickled).
            ArtifactUnverified: ``sha256`` is None.
            ArtifactCorrupt: the file is truncated, damaged or not a winnow artifact.
        """
        return _verified_unpickle(self._read(function_id, version), sha256, function_id, version)

    def digest(self, function_id: str, version: int) -> str:
        """The SHA-256 of the stored artifact as it is now (read, never unpickled)."""
        return _sha256(self._read(function_id, version))

    def _read(self, function_id: str, version: int) -> bytes:
        try:
            return self.path(function_id, version).read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactNotFound(f"model {function_id} v{version} does not exist") from exc

    def versions(self, function_id: str) -> list[int]:
        """Saved versions of ``function_id`` in increasing order (temporary files excluded)."""
        directory = self._function_dir(function_id)
        if not directory.is_dir():
            return []
        return _versions_named(entry.name for entry in directory.iterdir())

    def latest_version(self, function_id: str) -> int | None:
        """The highest saved version, or ``None`` when the function has no artifact yet."""
        return max(self.versions(function_id), default=None)

    def delete_function(self, function_id: str) -> None:
        """Remove every artifact of ``function_id``; a function without artifacts is a no-op."""
        directory = self._function_dir(function_id)
        shutil.rmtree(directory, ignore_errors=True)
        if not directory.exists():
            _fsync_directory(self.root)

    def sweep_temp_files(self, *, older_than_seconds: float = 0.0) -> int:
        """Delete temporary files left by interrupted saves; return how many were removed.

        Call it at start-up (no save in flight), or with ``older_than_seconds`` larger than any
        save takes so concurrent saves are not disturbed.

        Args:
            older_than_seconds: only remove temp files last modified at least this long ago.
        """
        cutoff = time.time() - older_than_seconds
        removed = 0
        for temp_path in self.root.glob(f"*/{_TEMP_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                if temp_path.stat().st_mtime <= cutoff:
                    temp_path.unlink()
                    removed += 1
        return removed

    def _function_dir(self, function_id: str) -> Path:
        return self.root / _checked_function_id(function_id)


class StoredObject(Protocol):
    @property
    def key(self) -> str: ...


class ObjectStorage(Protocol):
    """Keys to bytes (``store.S3Objects``); ``get`` raises a ``LookupError`` for a missing key."""

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str = "") -> Iterable[StoredObject]: ...


class ObjectModelStore:
    """:class:`ModelStore`'s interface over object storage shared by replicas.

    Args:
        objects: where artifacts live, under ``models/``.
    """

    def __init__(self, objects: ObjectStorage) -> None:
        self.objects = objects

    def key(self, function_id: str, version: int) -> str:
        return self._prefix(function_id) + _artifact_name(version)

    def save(
        self,
        function_id: str,
        version: int,
        head: Any,
        meta: dict[str, Any],
        *,
        overwrite: bool = False,
    ) -> str:
        """Write one artifact in a single put; return its digest (see :meth:`ModelStore.save`)."""
        key = self.key(function_id, version)
        if not overwrite and self.objects.exists(key):
            raise ArtifactExists(f"model {function_id} v{version} already exists")
        data = _serialized(head, meta)
        self.objects.put(key, data)
        return _sha256(data)

    def load(
        self, function_id: str, version: int, *, sha256: str | None
    ) -> tuple[Any, dict[str, Any]]:
        """Read back ``(head, meta)``, verified first (see :meth:`ModelStore.load`)."""
        return _verified_unpickle(self._read(function_id, version), sha256, function_id, version)

    def digest(self, function_id: str, version: int) -> str:
        """The SHA-256 of the stored artifact as it is now (read, never unpickled)."""
        return _sha256(self._read(function_id, version))

    def _read(self, function_id: str, version: int) -> bytes:
        try:
            return self.objects.get(self.key(function_id, version))
        except LookupError as exc:
            raise ArtifactNotFound(f"model {function_id} v{version} does not exist") from exc

    def versions(self, function_id: str) -> list[int]:
        prefix = self._prefix(function_id)
        return _versions_named(entry.key[len(prefix) :] for entry in self.objects.list(prefix))

    def latest_version(self, function_id: str) -> int | None:
        return max(self.versions(function_id), default=None)

    def delete_function(self, function_id: str) -> None:
        for entry in list(self.objects.list(self._prefix(function_id))):
            self.objects.delete(entry.key)

    def sweep_temp_files(self, *, older_than_seconds: float = 0.0) -> int:
        """Nothing to sweep: a put leaves no temporary object behind."""
        return 0

    def _prefix(self, function_id: str) -> str:
        return f"models/{_checked_function_id(function_id)}/"


def _artifact_name(version: int) -> str:
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"version must be a non-negative int, got {version!r}")
    return f"v{version}.joblib"


def _versions_named(names: Iterable[str]) -> list[int]:
    """The versions among artifact file names (temporary files and strangers ignored), sorted."""
    found = (_ARTIFACT_NAME.match(name) for name in names)
    return sorted(int(match.group(1)) for match in found if match)


def _checked_function_id(function_id: str) -> str:
    if not isinstance(function_id, str) or not _FUNCTION_ID.match(function_id):
        raise InvalidFunctionId(
            f"function id {function_id!r} must be 1-128 letters, digits, '_', '.' or '-' "
            "and start with a letter or digit"
        )
    return function_id


def _serialized(head: Any, meta: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    joblib.dump({"format": ARTIFACT_FORMAT, "head": head, "meta": dict(meta)}, buffer)
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verified_unpickle(
    data: bytes, sha256: str | None, function_id: str, version: int
) -> tuple[Any, dict[str, Any]]:
    """``(head, meta)`` of an artifact's bytes, unpickled only if they are the recorded ones."""
    if sha256 is None:
        raise ArtifactUnverified(
            f"model {function_id} v{version} has no recorded SHA-256 digest (an older winnow "
            "wrote it), so it cannot be verified and is not loaded; train the function again"
        )
    actual = _sha256(data)
    if actual != sha256:
        log.error(
            "model %s v%d refused unread: SHA-256 %s, recorded %s",
            function_id,
            version,
            actual,
            sha256,
        )
        raise ArtifactTampered(
            f"model {function_id} v{version} was refused unread: its SHA-256 digest {actual} "
            f"does not match the recorded {sha256} (the file changed after winnow wrote it)"
        )
    return _unpickle(io.BytesIO(data), function_id, version)


def _unpickle(source: IO[bytes], function_id: str, version: int) -> tuple[Any, dict[str, Any]]:
    """``(head, meta)`` of verified artifact bytes; ArtifactCorrupt for anything else."""
    try:
        payload = joblib.load(source)
    except Exception as exc:  # unpickling damaged bytes can raise nearly any exception type
        raise ArtifactCorrupt(f"model {function_id} v{version} cannot be read: {exc!r}") from exc
    if (
        not isinstance(payload, dict)
        or payload.get("format") != ARTIFACT_FORMAT
        or "head" not in payload
        or not isinstance(payload.get("meta"), dict)
    ):
        raise ArtifactCorrupt(f"model {function_id} v{version} is not a winnow artifact")
    return payload["head"], payload["meta"]


def _fsync_directory(directory: Path) -> None:
    """Persist a rename or unlink in ``directory`` (a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)

"""Content-addressed blob stores: the local file system, or S3-compatible object storage."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from store.objects import ObjectNotFound, S3Objects


class BlobNotFound(LookupError):
    """No blob with that digest is stored."""


class BlobStore:
    """Stores immutable byte blobs under their SHA-256 digest.

    Writes go to a temporary file in the same directory, are fsynced and then renamed, so a reader
    or a crash never sees a partial blob. Storing the same bytes twice is a no-op. Directories
    are created ``0700`` and blobs ``0600``: images are the owner's alone.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        _check_digest(digest)
        return self.root / digest[:2] / digest[2:]

    @staticmethod
    def digest(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its digest."""
        digest = self.digest(data)
        path = self._path(digest)
        if path.exists():
            return digest
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)
        return digest

    def get(self, digest: str) -> bytes:
        try:
            return self._path(digest).read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFound(digest) from exc

    def exists(self, digest: str) -> bool:
        try:
            return self._path(digest).exists()
        except BlobNotFound:
            return False

    def delete(self, digest: str) -> None:
        self._path(digest).unlink(missing_ok=True)

    def digests(self) -> Iterator[str]:
        """Every stored digest (temporary files from interrupted writes excluded)."""
        for sub in self.root.iterdir():
            if sub.is_dir() and len(sub.name) == 2:
                for entry in sub.iterdir():
                    if not entry.name.startswith(".tmp-"):
                        yield sub.name + entry.name

    def sweep(self, referenced: set[str], *, older_than_seconds: float = 0.0) -> int:
        """Delete blobs no row references and leftover temp files; return how many were removed.

        A blob is written before the row naming it commits, so a writer in flight has an
        unreferenced blob (or temp file) for a moment. Sweep with no writer running (at start-up,
        one process per store) or with ``older_than_seconds`` longer than any write takes.

        Args:
            referenced: digests some row names.
            older_than_seconds: only remove files last modified at least this long ago.
        """
        cutoff = time.time() - older_than_seconds
        removed = 0
        for sub in self.root.iterdir():
            if not sub.is_dir():
                continue
            for entry in sub.iterdir():
                if not entry.name.startswith(".tmp-") and sub.name + entry.name in referenced:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime <= cutoff:
                        entry.unlink()
                        removed += 1
        return removed


class S3BlobStore:
    """The same content-addressed store on S3-compatible object storage (``blobs/<digest>``).

    A put is one ``PutObject``, which S3 makes visible whole or not at all, so there are no
    temporary objects; the orphan sweep goes by the objects' ``LastModified``.

    Args:
        objects: the bucket and prefix to use.
    """

    def __init__(self, objects: S3Objects) -> None:
        self.objects = objects

    digest = staticmethod(BlobStore.digest)

    def put(self, data: bytes) -> str:
        """Store ``data`` (skipped if present: the key is its content) and return its digest."""
        digest = self.digest(data)
        if not self.objects.exists(_key(digest)):
            self.objects.put(_key(digest), data)
        return digest

    def get(self, digest: str) -> bytes:
        try:
            return self.objects.get(_key(digest))
        except ObjectNotFound as exc:
            raise BlobNotFound(digest) from exc

    def exists(self, digest: str) -> bool:
        try:
            return self.objects.exists(_key(digest))
        except BlobNotFound:
            return False

    def delete(self, digest: str) -> None:
        self.objects.delete(_key(digest))

    def digests(self) -> Iterator[str]:
        for entry in self.objects.list(_BLOBS):
            yield entry.key[len(_BLOBS) :]

    def sweep(self, referenced: set[str], *, older_than_seconds: float = 0.0) -> int:
        """Delete objects no row references, last modified at least ``older_than_seconds`` ago
        (see :meth:`BlobStore.sweep`); return how many were removed."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        removed = 0
        for entry in list(self.objects.list(_BLOBS)):
            digest = entry.key[len(_BLOBS) :]
            if digest not in referenced and entry.last_modified <= cutoff:
                self.objects.delete(entry.key)
                removed += 1
        return removed


_BLOBS = "blobs/"


def _key(digest: str) -> str:
    _check_digest(digest)
    return _BLOBS + digest


def _check_digest(digest: str) -> None:
    """Only a hex SHA-256 names a blob: anything else is a missing blob, never a path."""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise BlobNotFound(digest)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

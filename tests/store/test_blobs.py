"""BlobStore: content addressing, atomic durable writes, and the orphan sweep."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from store import BlobNotFound, BlobStore


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    digest = blobs.put(b"hello")
    assert digest == BlobStore.digest(b"hello") and len(digest) == 64
    assert blobs.get(digest) == b"hello" and blobs.exists(digest)
    path = tmp_path / "blobs" / digest[:2] / digest[2:]
    mtime = path.stat().st_mtime_ns
    assert blobs.put(b"hello") == digest
    assert path.stat().st_mtime_ns == mtime, "storing the same bytes again rewrote the file"
    assert _files(tmp_path / "blobs") == [path]
    assert list(blobs.digests()) == [digest]


def test_concurrent_puts_of_the_same_bytes_leave_one_file(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    data = os.urandom(256 * 1024)
    errors: list[BaseException] = []

    def put() -> None:
        try:
            blobs.put(data)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    (only,) = _files(tmp_path / "blobs")
    assert only.read_bytes() == data


def test_failed_write_leaves_neither_blob_nor_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = BlobStore(tmp_path / "blobs")

    def crash(_src: object, _dst: object) -> None:
        raise OSError("disk full at the worst moment")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        blobs.put(b"half written")
    assert _files(tmp_path / "blobs") == []
    assert not blobs.exists(BlobStore.digest(b"half written"))


def test_fsyncs_file_and_directory_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    blobs.put(b"durable")
    assert len(synced) >= 2, "the file and its directory entry must both be fsynced"


def test_sweep_removes_orphans_and_crash_leftovers_only(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    kept = blobs.put(b"referenced")
    orphan = blobs.put(b"written, but the row never committed")
    leftover = tmp_path / "blobs" / kept[:2] / ".tmp-crashed"
    leftover.write_bytes(b"partial")
    assert set(blobs.digests()) == {kept, orphan}, "temp files are not blobs"

    assert blobs.sweep({kept}) == 2
    assert blobs.get(kept) == b"referenced"
    assert not blobs.exists(orphan) and not leftover.exists()
    assert blobs.sweep({kept}) == 0


def test_bad_digests_are_not_found_and_cannot_escape_the_root(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    (tmp_path / "secret").write_bytes(b"outside")
    for bad in ("../secret", "0" * 63, "Z" * 64, "", "../" + "0" * 61):
        assert not blobs.exists(bad)
        with pytest.raises(BlobNotFound):
            blobs.get(bad)
    with pytest.raises(BlobNotFound):
        blobs.get("0" * 64)  # well-formed but absent
    blobs.delete("0" * 64)  # deleting an absent blob is fine


def test_a_sweep_with_a_grace_period_leaves_young_files_alone(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    young, old = blobs.put(b"a write whose row may commit any moment"), blobs.put(b"a crash's")
    two_hours_ago = time.time() - 7200
    os.utime(tmp_path / "blobs" / old[:2] / old[2:], (two_hours_ago, two_hours_ago))
    assert blobs.sweep(set(), older_than_seconds=3600) == 1
    assert blobs.exists(young) and not blobs.exists(old)

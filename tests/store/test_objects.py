"""Blobs and model artifacts in S3-compatible storage, against a real S3 HTTP endpoint (moto)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import boto3
import pytest

from learner import ObjectModelStore
from learner.errors import (
    ArtifactCorrupt,
    ArtifactExists,
    ArtifactNotFound,
    ArtifactTampered,
    ArtifactUnverified,
)
from store import (
    BlobNotFound,
    ObjectStoreUnavailable,
    S3BlobStore,
    S3Objects,
    parse_s3_url,
)
from tests.planted import planted_artifact


@pytest.fixture
def objects(s3_url: str) -> S3Objects:
    return S3Objects(*parse_s3_url(s3_url))


class Head:
    classes_ = ["a", "b"]


def test_blobs_are_content_addressed_objects(objects: S3Objects) -> None:
    blobs = S3BlobStore(objects)
    digest = blobs.put(b"hello")
    assert digest == S3BlobStore.digest(b"hello") and blobs.put(b"hello") == digest
    assert blobs.get(digest) == b"hello" and blobs.exists(digest)
    raw = boto3.client("s3").get_object(Bucket=objects.bucket, Key=f"winnow/blobs/{digest}")
    assert raw["Body"].read() == b"hello"  # under the prefix, named by content
    assert list(blobs.digests()) == [digest]
    with pytest.raises(BlobNotFound):
        blobs.get("0" * 64)
    with pytest.raises(BlobNotFound):
        blobs.get("../../etc/passwd")
    blobs.delete(digest)
    assert not blobs.exists(digest)


def test_sweep_removes_only_unreferenced_objects_old_enough(objects: S3Objects) -> None:
    blobs = S3BlobStore(objects)
    kept, orphan = blobs.put(b"kept"), blobs.put(b"orphan")
    assert blobs.sweep({kept}, older_than_seconds=3600) == 0  # young: maybe a write in flight
    assert blobs.sweep({kept}) == 1
    assert set(blobs.digests()) == {kept} and not blobs.exists(orphan)


def test_model_artifacts_round_trip(objects: S3Objects) -> None:
    models = ObjectModelStore(objects)
    assert models.versions("function_a") == [] and models.latest_version("function_a") is None
    models.save("function_a", 1, Head(), {"labels": ["a", "b"]})
    digest = models.save("function_a", 2, Head(), {"labels": ["a", "b"]})
    models.save("function_b", 1, Head(), {})
    assert digest == hashlib.sha256(objects.get("models/function_a/v2.joblib")).hexdigest()
    head, meta = models.load("function_a", 2, sha256=digest)
    assert head.classes_ == ["a", "b"] and meta == {"labels": ["a", "b"]}
    assert models.versions("function_a") == [1, 2]
    with pytest.raises(ArtifactExists):
        models.save("function_a", 2, Head(), {})
    with pytest.raises(ArtifactNotFound):
        models.load("function_a", 3, sha256=digest)
    objects.put("models/function_a/v3.joblib", b"not a pickle")
    with pytest.raises(ArtifactCorrupt, match="cannot be read"):
        models.load("function_a", 3, sha256=hashlib.sha256(b"not a pickle").hexdigest())
    models.delete_function("function_a")
    assert models.versions("function_a") == [] and models.versions("function_b") == [1]


def test_a_planted_artifact_object_is_refused_unread(objects: S3Objects, tmp_path: Path) -> None:
    models = ObjectModelStore(objects)
    digest = models.save("function_a", 1, Head(), {})
    marker = tmp_path / "planted-code-ran"
    objects.put("models/function_a/v1.joblib", planted_artifact(marker))

    with pytest.raises(ArtifactTampered, match=f"does not match the recorded {digest}"):
        models.load("function_a", 1, sha256=digest)
    with pytest.raises(ArtifactUnverified):
        models.load("function_a", 1, sha256=None)
    assert not marker.exists()


def test_an_unreachable_store_is_unavailable_not_a_crash(monkeypatch, s3_url: str) -> None:
    bucket, _ = parse_s3_url(s3_url)
    with pytest.raises(ObjectStoreUnavailable, match="s3://no-such-bucket"):
        S3Objects("no-such-bucket").check()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    down = S3Objects(bucket, "winnow")
    for call in (down.check, lambda: down.put("k", b"x"), lambda: down.get("k"), down.list):
        with pytest.raises(ObjectStoreUnavailable, match=bucket):
            list(call() or [])

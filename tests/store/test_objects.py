"""Blobs and model artifacts in S3-compatible storage, against a real S3 HTTP endpoint (moto)."""

from __future__ import annotations

import boto3
import pytest

from learner import ObjectModelStore
from learner.errors import ArtifactCorrupt, ArtifactExists, ArtifactNotFound
from store import (
    BlobNotFound,
    ObjectStoreUnavailable,
    S3BlobStore,
    S3Objects,
    parse_s3_url,
)


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
    models.save("function_a", 2, Head(), {"labels": ["a", "b"]})
    models.save("function_b", 1, Head(), {})
    head, meta = models.load("function_a", 2)
    assert head.classes_ == ["a", "b"] and meta == {"labels": ["a", "b"]}
    assert models.versions("function_a") == [1, 2]
    with pytest.raises(ArtifactExists):
        models.save("function_a", 2, Head(), {})
    with pytest.raises(ArtifactNotFound):
        models.load("function_a", 3)
    objects.put("models/function_a/v3.joblib", b"not a pickle")
    with pytest.raises(ArtifactCorrupt):
        models.load("function_a", 3)
    models.delete_function("function_a")
    assert models.versions("function_a") == [] and models.versions("function_b") == [1]


def test_an_unreachable_store_is_unavailable_not_a_crash(monkeypatch, s3_url: str) -> None:
    bucket, _ = parse_s3_url(s3_url)
    with pytest.raises(ObjectStoreUnavailable, match="s3://no-such-bucket"):
        S3Objects("no-such-bucket").check()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    down = S3Objects(bucket, "winnow")
    for call in (down.check, lambda: down.put("k", b"x"), lambda: down.get("k"), down.list):
        with pytest.raises(ObjectStoreUnavailable, match=bucket):
            list(call() or [])

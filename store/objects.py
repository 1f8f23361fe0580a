"""S3-compatible object storage (boto3): the shared home of blobs and model artifacts at scale.

The endpoint and credentials come from boto3's standard configuration (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``..., ``~/.aws``), so MinIO, Ceph RGW, R2 and AWS work alike. Every storage
failure becomes :class:`ObjectStoreUnavailable` (a 503 at the API), a missing key
:class:`ObjectNotFound`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError


class ObjectStoreUnavailable(RuntimeError):
    """The object store could not be reached or refused the request; retrying may succeed."""

    retry_after = 5.0


class ObjectNotFound(LookupError):
    """No object under that key."""


@dataclass(frozen=True)
class StoredObject:
    key: str  # relative to the store's prefix
    last_modified: datetime


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` -> (bucket, prefix without slashes at either end)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an S3 URL (s3://BUCKET[/PREFIX]): {url!r}")
    return parsed.netloc, parsed.path.strip("/")


class S3Objects:
    """Keys under one bucket and prefix; put, get, head, delete and list, nothing more.

    Args:
        bucket: an existing bucket (winnow never creates one: that is the operator's call).
        prefix: keys live under ``<prefix>/``, so several services can share a bucket.
        client: a boto3 S3 client; built from boto3's standard configuration when None.
    """

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None) -> None:
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            )
            client = boto3.client("s3", config=config)
        self._client = client
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""

    def check(self) -> None:
        """Fail now, with a message naming the bucket, if it cannot be used."""
        self._call("head_bucket", Bucket=self.bucket)

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``; S3 makes an object visible whole or not at all."""
        self._call("put_object", Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def get(self, key: str) -> bytes:
        response = self._call("get_object", Bucket=self.bucket, Key=self.prefix + key)
        try:
            return bytes(response["Body"].read())
        except (BotoCoreError, OSError) as exc:  # the connection broke while streaming the body
            where = f"s3://{self.bucket}/{self.prefix}{key}"
            raise ObjectStoreUnavailable(f"reading {where}: {exc}") from exc

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", Bucket=self.bucket, Key=self.prefix + key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is a no-op, as in S3."""
        self._call("delete_object", Bucket=self.bucket, Key=self.prefix + key)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every object whose key starts with ``prefix`` (relative keys)."""
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        try:
            for page in pages:
                for entry in page.get("Contents", []):
                    key = entry["Key"][len(self.prefix) :]
                    yield StoredObject(key=key, last_modified=entry["LastModified"])
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, self.bucket, self.prefix + prefix) from exc

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, operation)(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, self.bucket, kwargs.get("Key", "")) from exc


def _translate(exc: BotoCoreError | ClientError, bucket: str, key: str) -> Exception:
    """botocore's errors as ours: a missing key, or the store being unavailable."""
    where = f"s3://{bucket}/{key}"
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchKey", "NotFound"} and key:
            return ObjectNotFound(where)
        return ObjectStoreUnavailable(f"object store refused {where}: {code or exc}")
    return ObjectStoreUnavailable(f"object store unreachable for {where}: {exc}")

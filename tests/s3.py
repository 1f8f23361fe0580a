"""A real S3 HTTP endpoint for tests: moto's server mode, started in process on a free port.

boto3 is pointed at it the standard way (``AWS_ENDPOINT_URL`` and dummy credentials in the
environment), as an operator would point it at MinIO or AWS; each test gets its own bucket.
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoS3:
    """moto's S3 server on 127.0.0.1:``port``; ``stop`` and ``start`` again simulate an outage
    (moto keeps its buckets in this process, so they survive it)."""

    def __init__(self) -> None:
        moto_server = pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._factory = moto_server.ThreadedMotoServer
        self._server = None

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request
        self._server = self._factory(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@contextmanager
def moto_s3() -> Iterator[MotoS3]:
    server = MotoS3()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def point_boto3_at(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def new_bucket() -> str:
    """A fresh bucket on the endpoint boto3 is pointed at; returns its name."""
    import boto3

    name = f"winnow-{secrets.token_hex(4)}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name

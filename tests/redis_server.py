"""The Redis server tests use: ``WINNOW_TEST_REDIS`` (default ``redis://127.0.0.1:6379/0``)."""

from __future__ import annotations

import functools
import os

import redis

REDIS_URL = os.environ.get("WINNOW_TEST_REDIS", "redis://127.0.0.1:6379/0")


@functools.cache
def redis_unreachable() -> str | None:
    """Why the test server cannot be used, or None when it answers (checked once per session)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
        return None
    except redis.RedisError as exc:
        return f"no Redis at {REDIS_URL} ({exc}); set WINNOW_TEST_REDIS"
    finally:
        client.close()

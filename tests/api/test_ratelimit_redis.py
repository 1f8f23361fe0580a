"""Rate limits shared through Redis: replicas take from one bucket per key, atomically, on Redis'
clock; a Redis outage is a 503 for rate-limited keys only, never a 500.

The server is ``WINNOW_TEST_REDIS`` (default ``redis://127.0.0.1:6379/0``); tests that need it
are skipped with the reason when it does not answer. Limiter tests use a key prefix of their own,
app tests fresh key ids; each deletes what it wrote.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from service.ratelimit import REDIS_PREFIX, RateLimitUnavailable, RedisRateLimiter
from service.settings import Settings
from tests.conftest import AUTH
from tests.redis_server import REDIS_URL


def closed_port_url() -> str:
    """A Redis URL on a local port nothing listens on (connections are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key namespace of this test's own, emptied afterwards."""
    namespace = f"winnow-test:{secrets.token_hex(6)}:ratelimit:"
    yield namespace
    stale = list(redis_client.scan_iter(match=namespace + "*"))
    if stale:
        redis_client.delete(*stale)


@pytest.fixture
def replicas(prefix: str) -> Iterator[tuple[RedisRateLimiter, RedisRateLimiter]]:
    """Two limiters with their own connections, as two API replicas have."""
    one = RedisRateLimiter.from_url(REDIS_URL, prefix=prefix)
    two = RedisRateLimiter.from_url(REDIS_URL, prefix=prefix)
    yield one, two
    one.close()
    two.close()


def test_two_replicas_share_one_bucket_per_key(
    replicas: tuple[RedisRateLimiter, RedisRateLimiter],
) -> None:
    one, two = replicas
    waits = [limiter.take("key_a", 20) for limiter in (one, two) * 20]
    assert waits[:20] == [None] * 20  # 20 in total, not 20 each
    refused = waits[20:]
    # one token comes back every 3 s (20 a minute)
    assert all(w is not None and 0 < w <= 3.0 for w in refused), refused
    assert one.take("key_b", 20) is None  # another key has a bucket of its own


def test_concurrent_takes_never_spend_a_token_twice(
    replicas: tuple[RedisRateLimiter, RedisRateLimiter],
) -> None:
    allowed = []
    lock = threading.Lock()

    def hammer(limiter: RedisRateLimiter) -> None:
        for _ in range(10):
            if limiter.take("key_c", 30) is None:
                with lock:
                    allowed.append(1)

    threads = [threading.Thread(target=hammer, args=(replicas[i % 2],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 30  # 60 attempts on a bucket of 30 (one more only after 2 s)


def test_the_bucket_refills_at_the_rate_on_redis_clock(
    replicas: tuple[RedisRateLimiter, RedisRateLimiter],
) -> None:
    one, two = replicas
    deadline = time.monotonic() + 10
    taken = 0
    while (wait := one.take("key_d", 600)) is None:
        taken += 1
        assert time.monotonic() < deadline, "the bucket never ran dry"
    assert taken >= 600  # a full minute's worth first, plus what refilled meanwhile
    assert 0 < wait <= 0.1  # 10 a second
    while two.take("key_d", 600) is not None:  # the other replica sees the refill too
        assert time.monotonic() < deadline, "the bucket never refilled"


def test_buckets_are_namespaced_expire_when_idle_and_are_forgotten(
    redis_client: redis.Redis, prefix: str, replicas: tuple[RedisRateLimiter, RedisRateLimiter]
) -> None:
    assert RedisRateLimiter(redis_client).bucket_key("key_x") == "winnow:ratelimit:key_x"
    assert REDIS_PREFIX == "winnow:ratelimit:"
    one, _ = replicas
    assert one.take("key_e", 20) is None
    # 1 token short refills in 3 s; the bucket expires then (plus a second's slack)
    assert 0 < redis_client.pttl(f"{prefix}key_e") <= 4000
    one.forget("key_e")
    assert not redis_client.exists(f"{prefix}key_e")


def test_an_unreachable_redis_is_reported_once_not_per_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RedisRateLimiter.from_url(closed_port_url())
    with caplog.at_level(logging.WARNING, logger="winnow.ratelimit"):
        for _ in range(3):
            with pytest.raises(RateLimitUnavailable, match="Redis unavailable"):
                limiter.take("key_f", 20)
        limiter.forget("key_f")  # a deleted key's bucket would expire anyway: no error
    outage = [r for r in caplog.records if "rate limits unavailable" in r.getMessage()]
    assert len(outage) == 1
    limiter.close()


@pytest.mark.databases
def test_two_apps_share_a_keys_limit(settings: Settings, redis_client: redis.Redis) -> None:
    shared = dataclasses.replace(settings, redis_url=REDIS_URL)
    with (
        TestClient(create_app(shared), headers=AUTH) as one,
        TestClient(create_app(shared), headers=AUTH) as two,
    ):
        created = one.post("/v1/keys", json={"scopes": ["annotate"], "rateLimitPerMinute": 20})
        assert created.status_code == 201, created.text
        key_id, key = created.json()["id"], bearer(created.json()["key"])
        try:
            codes = [c.get("/v1/functions", headers=key).status_code for c in (one, two) * 10]
            assert codes == [200] * 20
            limited = two.get("/v1/functions", headers=key)
            assert limited.status_code == 429, limited.text
            assert 1 <= int(limited.headers["Retry-After"]) <= 3
            assert one.get("/v1/functions", headers=key).status_code == 429
            assert two.get("/v1/functions").status_code == 200  # the admin key has no limit
            assert redis_client.exists(f"{REDIS_PREFIX}{key_id}")
            # deleting the key on one replica drops the shared bucket
            assert two.delete(f"/v1/keys/{key_id}").status_code == 204
            assert not redis_client.exists(f"{REDIS_PREFIX}{key_id}")
        finally:
            redis_client.delete(f"{REDIS_PREFIX}{key_id}")


def test_redis_down_is_503_for_rate_limited_keys_only(settings: Settings) -> None:
    down = dataclasses.replace(settings, redis_url=closed_port_url())
    with TestClient(create_app(down), headers=AUTH) as client:
        # the admin key and keys without a limit never touch Redis
        limited = client.post("/v1/keys", json={"scopes": ["annotate"], "rateLimitPerMinute": 5})
        unlimited = client.post("/v1/keys", json={"scopes": ["annotate"]})
        assert limited.status_code == unlimited.status_code == 201
        assert (
            client.get("/v1/functions", headers=bearer(unlimited.json()["key"])).status_code == 200
        )

        refused = client.get("/v1/functions", headers=bearer(limited.json()["key"]))
        assert refused.status_code == 503
        assert "rate limits cannot be checked" in refused.json()["message"]
        assert refused.headers["Retry-After"] == "5"
        # deleting the key still works: its bucket would expire by itself
        assert client.delete(f"/v1/keys/{limited.json()['id']}").status_code == 204

"""Per-key request rate limits: a token bucket per API key, kept in this process or in Redis.

Without a Redis URL each process keeps its own buckets, so N replicas allow up to N times a key's
limit. With one, every replica takes from the same bucket per key, checked and updated atomically
by a Lua script on Redis' own clock (replicas' clock skew does not matter).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger("winnow.ratelimit")

# Where the shared buckets live: one hash per key id, ``winnow:ratelimit:<key_id>``.
REDIS_PREFIX = "winnow:ratelimit:"
# Redis answers in well under a millisecond; waiting longer only stalls requests while it is down.
REDIS_TIMEOUT_S = 1.0
# What a rate-limited key is told to wait while Redis cannot be reached.
UNAVAILABLE_RETRY_AFTER_S = 5.0

# One token bucket per key: capacity ARGV[1] requests, refilled at ARGV[1] / 60 per second.
# Returns 0 when a request was taken, else the microseconds until the next one is available.
# Times are Redis' own (TIME), in microseconds; numbers passed to redis.call keep full precision.
TOKEN_BUCKET_LUA = """
local capacity = tonumber(ARGV[1])
local per_us = capacity / 60000000
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * per_us)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / per_us)
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
-- once refilled the bucket is the same as a missing one, so an idle key vanishes then
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / per_us / 1000) + 1000)
return wait
"""


def connect_redis(url: str) -> redis.Redis:
    """A client of ``url`` with short timeouts; nothing connects until its first command."""
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        # one immediate retry: a pooled connection Redis closed (restart, idle timeout)
        retry=Retry(NoBackoff(), 1),
    )


def redis_server(client: redis.Redis) -> str:
    """Where ``client`` connects, for logs (without the password a URL may hold)."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix:{kwargs['path']} db {kwargs.get('db', 0)}"
    return f"{kwargs.get('host')}:{kwargs.get('port')} db {kwargs.get('db', 0)}"


class RateLimitUnavailable(Exception):
    """The shared limiter cannot be reached, so a rate-limited request can be neither counted nor
    refused; answered 503 with ``Retry-After`` (api.errors)."""

    retry_after = UNAVAILABLE_RETRY_AFTER_S


class Limiter(Protocol):
    """What ``Runtime.rate_limits`` offers, in one process or shared."""

    def take(self, key_id: str, per_minute: int) -> float | None:
        """Spend one request of ``key_id``'s budget; None if allowed, else seconds to wait."""
        ...

    def forget(self, key_id: str) -> None:
        """Drop a deleted key's bucket."""
        ...

    def close(self) -> None: ...


class RateLimiter:
    """Token buckets keyed by API key id; a bucket holds one minute's worth of requests.

    Each process keeps its own buckets, so N replicas allow up to N times the limit in total.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # key id -> (tokens left, time of the last refill)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str, per_minute: int) -> float | None:
        """Spend one request of ``key_id``'s budget; None if allowed, else seconds to wait."""
        rate = per_minute / 60.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return None
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / rate

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._buckets.pop(key_id, None)

    def close(self) -> None:
        pass


class RedisRateLimiter:
    """The same token buckets in Redis, shared by every replica that uses the same server.

    Each :meth:`take` is one EVALSHA of :data:`TOKEN_BUCKET_LUA`, so concurrent requests on any
    number of replicas never spend one token twice. Redis errors become
    :class:`RateLimitUnavailable` (logged once per outage, not per request).
    """

    def __init__(self, client: redis.Redis, *, prefix: str = REDIS_PREFIX) -> None:
        """
        Args:
            client: a connected (or lazily connecting) client; closed by :meth:`close`.
            prefix: namespace of the bucket keys (tests use their own).
        """
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(TOKEN_BUCKET_LUA)
        self._failing = False

    @classmethod
    def from_url(cls, url: str, *, prefix: str = REDIS_PREFIX) -> RedisRateLimiter:
        """A limiter on ``url`` (``redis://[:password@]host:port/db``, ``rediss://`` for TLS);
        nothing connects until the first rate-limited request."""
        return cls(connect_redis(url), prefix=prefix)

    def where(self) -> str:
        """The server, for logs (without the password a URL may hold)."""
        return redis_server(self._client)

    def bucket_key(self, key_id: str) -> str:
        return f"{self._prefix}{key_id}"

    def take(self, key_id: str, per_minute: int) -> float | None:
        """Spend one request of ``key_id``'s budget; None if allowed, else seconds to wait.

        Raises RateLimitUnavailable when Redis cannot be reached or fails.
        """
        try:
            wait_us = int(self._script(keys=[self.bucket_key(key_id)], args=[per_minute]))
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("rate limits unavailable (Redis: %s); limited keys get 503", exc)
            self._failing = True
            raise RateLimitUnavailable(
                "rate limits cannot be checked right now (Redis unavailable); retry later"
            ) from exc
        if self._failing:
            log.info("rate limits available again (Redis answers)")
            self._failing = False
        return None if wait_us <= 0 else wait_us / 1_000_000

    def forget(self, key_id: str) -> None:
        """Drop a deleted key's bucket; if Redis fails it expires by itself (ids are not reused)."""
        try:
            self._client.delete(self.bucket_key(key_id))
        except redis.RedisError as exc:
            log.warning("could not drop the rate limit bucket of %s (Redis: %s)", key_id, exc)

    def close(self) -> None:
        self._client.close()


def make_rate_limiter(redis_url: str) -> Limiter:
    """Shared buckets in Redis when ``redis_url`` is set, else this process's own."""
    if not redis_url:
        return RateLimiter()
    limiter = RedisRateLimiter.from_url(redis_url)
    log.info("rate limits shared through Redis at %s", limiter.where())
    return limiter


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}

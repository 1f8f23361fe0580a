"""Throttling of failed authentication: per client address and per key id, in this process or in
Redis (shared by every replica).

Each subject (``address:<ip>``, ``key:<key id>``) counts its failures in a fixed window that opens
at its first failure. After ``limit`` failures in a window:

- from an address, further attempts answer 429 without their secret being checked, whatever key
  they carry, until the window ends: otherwise an answer would still tell a guess right from wrong.
  A shared address (a NAT) is refused for its own rest of the minute; successes neither count nor
  reset the count, or one valid key would let its holder guess another key without limit;
- for a key id, wrong secrets answer 429 instead of 401, but the right secret still authenticates:
  an attacker elsewhere cannot lock a real key's owner out, and with 256 random bits the secret
  cannot be guessed anyway (an operator's ``admin_key`` has no id: the address limit guards it).

Missing keys are no guess and do not count. While Redis cannot be reached, each process counts on
its own (logged once per outage; Redis is tried again every few seconds), so authentication keeps
working and guessing stays bounded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

from service.auth import Authenticator, Principal, key_id_of
from service.errors import TooManyRequests, Unauthorized
from service.ratelimit import (
    UNAVAILABLE_RETRY_AFTER_S,
    connect_redis,
    redis_server,
    retry_after_header,
)

log = logging.getLogger("winnow.auth")

# Length of a failure window; the limit (``auth_failures_per_minute``) counts in one.
FAILURE_WINDOW_S = 60.0
# Where the shared counters live: ``winnow:authfail:address:<ip>``, ``winnow:authfail:key:<id>``.
REDIS_PREFIX = "winnow:authfail:"
# Most subjects one process keeps before it drops those whose window ended.
MAX_LOCAL_SUBJECTS = 100_000

# KEYS[1]: a subject's counter; ARGV[1]: 1 to count a failure, 0 to read; ARGV[2]: window in ms.
# Returns {failures in the window, milliseconds until it ends}; the first failure opens it.
FAILURES_LUA = """
local n
if ARGV[1] == '1' then
  n = redis.call('INCR', KEYS[1])
  if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
else
  n = tonumber(redis.call('GET', KEYS[1]) or '0')
end
return {n, redis.call('PTTL', KEYS[1])}
"""


class FailureCounts(Protocol):
    """Failures per subject in its current window."""

    def count(self, subject: str, *, add: bool) -> tuple[int, float]:
        """The subject's failures in its window (after adding one if ``add``) and the seconds
        until the window ends."""
        ...

    def close(self) -> None: ...


class LocalFailureCounts:
    """This process's counts (N replicas allow N times the limit)."""

    def __init__(
        self, window_s: float = FAILURE_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window_s = window_s
        self._clock = clock
        # subject -> (failures, end of its window)
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def count(self, subject: str, *, add: bool) -> tuple[int, float]:
        now = self._clock()
        with self._lock:
            failures, end = self._counts.get(subject, (0, now))
            if end <= now:
                failures, end = 0, now + self._window_s
            if not add:
                return failures, end - now
            self._counts[subject] = (failures + 1, end)
            if len(self._counts) > MAX_LOCAL_SUBJECTS:
                self._counts = {s: c for s, c in self._counts.items() if c[1] > now}
            return failures + 1, end - now

    def close(self) -> None:
        pass


class RedisFailureCounts:
    """The same counts in Redis, shared by every replica on the same server; one script call
    per count, on Redis' clock. Falls back to this process's counts while Redis fails."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = REDIS_PREFIX,
        window_s: float = FAILURE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._window_ms = round(window_s * 1000)
        self._script = client.register_script(FAILURES_LUA)
        self._local = LocalFailureCounts(window_s, clock)
        self._clock = clock
        # While Redis fails, it is tried again only this often: every request authenticates
        # through here, and a Redis that does not answer would add its timeout to each.
        self._retry_at: float | None = None

    def counter_key(self, subject: str) -> str:
        return f"{self._prefix}{subject}"

    def count(self, subject: str, *, add: bool) -> tuple[int, float]:
        if self._retry_at is not None and self._clock() < self._retry_at:
            return self._local.count(subject, add=add)
        try:
            args = [1 if add else 0, self._window_ms]
            failures, left_ms = self._script(keys=[self.counter_key(subject)], args=args)
        except redis.RedisError as exc:
            if self._retry_at is None:
                log.warning("failed authentications counted per process (Redis: %s)", exc)
            self._retry_at = self._clock() + UNAVAILABLE_RETRY_AFTER_S
            return self._local.count(subject, add=add)
        if self._retry_at is not None:
            log.info("failed authentications counted in Redis again")
            self._retry_at = None
        return int(failures), max(0, int(left_ms)) / 1000

    def close(self) -> None:
        self._client.close()


def make_failure_counts(redis_url: str) -> FailureCounts:
    """Counts shared in Redis when ``redis_url`` is set, else this process's own."""
    if not redis_url:
        return LocalFailureCounts()
    client = connect_redis(redis_url)
    log.info("failed authentications counted in Redis at %s", redis_server(client))
    return RedisFailureCounts(client)


class AuthThrottle:
    """Authenticates through ``authenticator``, refusing (429) addresses and key ids that failed
    ``limit`` times in a window (0: never)."""

    def __init__(self, authenticator: Authenticator, counts: FailureCounts, limit: int) -> None:
        self._authenticator = authenticator
        self._counts = counts
        self._limit = limit

    def authenticate(self, key: str | None, address: str | None) -> Principal:
        """The principal for ``key`` sent from ``address`` (None: unknown); 401 or 429."""
        if not key or self._limit <= 0:
            return self._authenticator.authenticate(key)
        address_subject = f"address:{address}" if address else None
        if address_subject is not None:
            failures, left = self._counts.count(address_subject, add=False)
            if failures >= self._limit:
                raise self._refused("from this address", left)
        try:
            return self._authenticator.authenticate(key)
        except Unauthorized:
            if address_subject is not None:
                self._add(address_subject)
            key_id = key_id_of(key)
            if key_id is not None:
                failures, left = self._add(f"key:{key_id}")
                if failures > self._limit:
                    raise self._refused(f"for API key {key_id}", left) from None
            raise

    def _add(self, subject: str) -> tuple[int, float]:
        failures, left = self._counts.count(subject, add=True)
        if failures == self._limit:
            log.warning("%s: %d failed authentications, refused %.0f s", subject, failures, left)
        return failures, left

    def _refused(self, where: str, left: float) -> TooManyRequests:
        headers = retry_after_header(left)
        return TooManyRequests(
            f"too many failed authentications {where}; retry in {headers['Retry-After']} s",
            headers=headers,
        )

    def close(self) -> None:
        self._counts.close()

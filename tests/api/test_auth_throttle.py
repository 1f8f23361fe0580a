"""Failed authentication is throttled per client address and per key id (429 + Retry-After),
in process or shared through Redis; successes do not count and a valid key keeps working."""

from __future__ import annotations

import dataclasses
import logging
import secrets

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from service.auth import Authenticator
from service.auth_throttle import REDIS_PREFIX, AuthThrottle, LocalFailureCounts, RedisFailureCounts
from service.errors import TooManyRequests, Unauthorized
from service.settings import Settings
from tests.api.test_ratelimit_redis import closed_port_url
from tests.conftest import ADMIN_KEY, AUTH
from tests.redis_server import REDIS_URL

LIMIT = 20  # the default auth_failures_per_minute


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def from_address(client: TestClient, address: str) -> TestClient:
    """A client of the same running app whose requests come from ``address``."""
    return TestClient(client.app, client=(address, 50000))


def wrong_key_of(key: str) -> str:
    """The same key id with another secret."""
    return key[:-8] + ("0" * 8 if not key.endswith("0" * 8) else "1" * 8)


def test_wrong_bearer_keys_from_one_address_get_429_then_even_a_valid_key(
    client: TestClient,
) -> None:
    attacker = from_address(client, "203.0.113.7")
    statuses = [
        attacker.get("/v1/functions", headers=bearer(f"guess-{i}")).status_code for i in range(30)
    ]
    assert statuses == [401] * LIMIT + [429] * 10
    refused = attacker.get("/v1/functions", headers=bearer("guess-31"))
    assert refused.status_code == 429 and "from this address" in refused.json()["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # The address is refused before any key is checked, so a right guess looks like a wrong one.
    assert attacker.get("/v1/functions", headers=bearer(ADMIN_KEY)).status_code == 429
    # Other addresses are not affected.
    assert from_address(client, "203.0.113.8").get("/v1/functions", headers=AUTH).status_code == 200


def test_missing_keys_and_successes_do_not_count(client: TestClient) -> None:
    caller = from_address(client, "198.51.100.1")
    assert {caller.get("/v1/functions").status_code for _ in range(30)} == {401}
    assert {caller.get("/v1/functions", headers=AUTH).status_code for _ in range(30)} == {200}
    wrong = [caller.get("/v1/functions", headers=bearer("x")).status_code for _ in range(LIMIT)]
    assert wrong == [401] * LIMIT
    assert caller.get("/v1/functions", headers=bearer("x")).status_code == 429


def test_a_valid_key_keeps_working_while_its_id_is_attacked(client: TestClient) -> None:
    key = client.post("/v1/keys", json={"scopes": ["annotate"]}).json()
    wrong = bearer(wrong_key_of(key["key"]))
    # One wrong secret from each of 30 addresses: only the key id's count reaches the limit.
    statuses = [
        from_address(client, f"192.0.2.{i}").get("/v1/functions", headers=wrong).status_code
        for i in range(30)
    ]
    assert statuses == [401] * LIMIT + [429] * 10
    refused = from_address(client, "192.0.2.99").get("/v1/functions", headers=wrong)
    assert refused.status_code == 429 and key["id"] in refused.json()["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    owner = from_address(client, "192.0.2.200")
    assert owner.get("/v1/functions", headers=bearer(key["key"])).status_code == 200
    # The owner's address has no failures of its own, so it is not refused either.
    assert owner.get("/v1/functions", headers=bearer(key["key"])).status_code == 200


def test_wrong_client_secrets_on_the_token_endpoint_get_429(client: TestClient) -> None:
    attacker = from_address(client, "203.0.113.9")
    form = {"client_id": "key_admin", "grant_type": "client_credentials"}
    statuses = [
        attacker.post(
            "/nyckel/connect/token", data={**form, "client_secret": f"guess-{i}"}
        ).status_code
        for i in range(30)
    ]
    assert statuses == [401] * LIMIT + [429] * 10
    refused = attacker.post("/nyckel/connect/token", data={**form, "client_secret": ADMIN_KEY})
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["message"]
    # ... and the Nyckel API behind it refuses the address too
    assert attacker.get("/nyckel/v1/functions", headers=AUTH).status_code == 429


def test_the_window_ends_and_a_zero_limit_turns_the_throttle_off(client: TestClient) -> None:
    now = [0.0]
    authenticator: Authenticator = client.app.state.runtime.auth  # type: ignore[attr-defined]
    throttle = AuthThrottle(authenticator, LocalFailureCounts(clock=lambda: now[0]), limit=3)
    for _ in range(3):
        with pytest.raises(Unauthorized):
            throttle.authenticate("wrong", "10.0.0.1")
    with pytest.raises(TooManyRequests) as refused:
        throttle.authenticate(ADMIN_KEY, "10.0.0.1")
    assert refused.value.headers == {"Retry-After": "60"}
    now[0] += 45
    with pytest.raises(TooManyRequests) as refused:
        throttle.authenticate(ADMIN_KEY, "10.0.0.1")
    assert refused.value.headers == {"Retry-After": "15"}
    now[0] += 15
    assert throttle.authenticate(ADMIN_KEY, "10.0.0.1").key_id == "key_admin"
    # No address known (a Unix socket): only key ids are counted.
    for _ in range(5):
        with pytest.raises(Unauthorized):
            throttle.authenticate("wrong", None)

    off = AuthThrottle(authenticator, LocalFailureCounts(clock=lambda: now[0]), limit=0)
    for _ in range(10):
        with pytest.raises(Unauthorized):
            off.authenticate("wrong", "10.0.0.1")


@pytest.mark.databases
def test_two_apps_share_the_failure_counts_through_redis(
    settings: Settings, redis_client: redis.Redis
) -> None:
    shared = dataclasses.replace(settings, redis_url=REDIS_URL)
    address = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    counter = f"{REDIS_PREFIX}address:{address}"
    redis_client.delete(counter)
    try:
        with (
            TestClient(create_app(shared), client=(address, 1)) as one,
            TestClient(create_app(shared), client=(address, 1)) as two,
        ):
            wrong = bearer("not-a-key")
            statuses = [c.get("/v1/functions", headers=wrong).status_code for c in (one, two) * 10]
            assert statuses == [401] * LIMIT  # ten on each: twenty in all
            assert 0 < redis_client.pttl(counter) <= 60_000
            for app_client in (one, two):
                refused = app_client.get("/v1/functions", headers=AUTH)
                assert refused.status_code == 429, refused.text
                assert 1 <= int(refused.headers["Retry-After"]) <= 60
    finally:
        redis_client.delete(counter)


def test_redis_down_counts_per_process_and_keys_still_work(settings: Settings) -> None:
    down = dataclasses.replace(settings, redis_url=closed_port_url())
    with TestClient(create_app(down), headers=AUTH) as client:
        assert client.get("/v1/functions").status_code == 200
        attacker = from_address(client, "203.0.113.50")
        statuses = [
            attacker.get("/v1/functions", headers=bearer("x")).status_code for _ in range(21)
        ]
        assert statuses == [401] * LIMIT + [429]
        assert client.get("/v1/functions").status_code == 200


def test_an_unreachable_redis_is_tried_again_every_few_seconds_only(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis that does not answer must not add its timeout to every request."""
    now = [0.0]
    counts = RedisFailureCounts(redis.Redis.from_url(closed_port_url()), clock=lambda: now[0])
    tries: list[str] = []

    def unreachable(**kwargs: object) -> None:
        tries.append("redis")
        raise redis.ConnectionError("connection refused")

    monkeypatch.setattr(counts, "_script", unreachable)
    with caplog.at_level(logging.WARNING, logger="winnow.auth"):
        assert counts.count("address:a", add=True) == (1, 60.0)
        now[0] += 1
        assert counts.count("address:a", add=True) == (2, 59.0)  # counted here meanwhile
        assert tries == ["redis"]
        now[0] += 4
        assert counts.count("address:a", add=False) == (2, 55.0)
        assert tries == ["redis", "redis"]
    assert len([r for r in caplog.records if "per process" in r.getMessage()]) == 1
    counts.close()

"""Soak: three API replicas with separate data dirs behind a real load balancer (haproxy), sharing
PostgreSQL, S3-compatible storage (moto's server) and Redis, under concurrent uploads,
annotations and invokes for ``WINNOW_SOAK_SECONDS`` (default 60); one replica is SIGKILLed a
third of the way in and restarted at half time.

Reported (printed with ``-s``) and asserted: acknowledged writes lost (0), failed requests other
than those in flight when the replica died (0), capture budget overrun across replicas (0),
rate-limit overrun across replicas (0), trainings of the function running at once (1).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.api.live import ServiceProcess, free_port, wait_until
from tests.conftest import BLUE, RED, data_uri, png_bytes
from tests.databases import fresh_postgres_database
from tests.redis_server import REDIS_URL, redis_unreachable

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SECONDS = float(os.environ.get("WINNOW_SOAK_SECONDS", "60"))
ADMIN = "soak-admin-key"
HOUR_BUDGET = 25  # captures allowed in any rolling hour, for all replicas together
LIMIT = 30  # requests a minute of the rate-limited key, for all replicas together


@dataclass
class Call:
    kind: str
    started: float
    ended: float
    status: int  # 0: no HTTP answer at all
    body: dict


class Recorder:
    def __init__(self, base_url: str, stop: threading.Event) -> None:
        self.base_url = base_url
        self.stop = stop
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def worker(
        self, kind: str, key: str, step: Callable[[httpx.Client, int], httpx.Response]
    ) -> threading.Thread:
        def run() -> None:
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=self.base_url, headers=headers, timeout=60) as http:
                i = 0
                while not self.stop.is_set():
                    started = time.monotonic()
                    try:
                        response = step(http, i)
                        status, body = response.status_code, _json(response)
                    except httpx.HTTPError as exc:
                        status, body = 0, {"error": repr(exc)}
                    with self._lock:
                        self.calls.append(Call(kind, started, time.monotonic(), status, body))
                    i += 1

        return threading.Thread(target=run, name=kind, daemon=True)


def _json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {"text": response.text[:200]}
    return body if isinstance(body, dict) else {"data": body}


def haproxy_config(port: int, backends: list[int]) -> str:
    servers = "\n".join(
        f"    server r{i} 127.0.0.1:{p} check inter 500ms fall 2 rise 1"
        for i, p in enumerate(backends)
    )
    return f"""global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout check 2s
    # a connection refused by a dead replica is retried on another (never a request already sent)
    retries 3
    option redispatch 1
frontend api
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /health
{servers}
"""


@contextmanager
def haproxy(directory: Path, backends: list[int]) -> Iterator[str]:
    port = free_port()
    config = directory / "haproxy.cfg"
    config.write_text(haproxy_config(port, backends))
    log = open(directory / "haproxy.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), timeout=30, what="haproxy")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def test_three_replicas_behind_haproxy_survive_a_kill(tmp_path, s3_url) -> None:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (Debian package haproxy)")
    if (reason := redis_unreachable()) is not None:
        pytest.skip(reason)
    with fresh_postgres_database() as database_url:
        args = ["--backbone", "tiny-clip", "--database-url", database_url]
        args += ["--blob-store", s3_url, "--redis-url", REDIS_URL, "--admin-key", ADMIN]
        args += ["--retrain-interval", "1", "--retrain-min-annotations", "5"]
        replicas = [ServiceProcess(tmp_path / f"replica{i}", *args) for i in range(3)]
        for replica in replicas:
            replica.data_dir.mkdir()
        try:
            replicas[0].start()  # creates the schema alone; the others join it
            for replica in replicas[1:]:
                replica.start()
            with haproxy(tmp_path, [r.port for r in replicas]) as url:
                report = soak(url, replicas[1])
        finally:
            for replica in replicas:
                replica.stop()
    print("\nsoak:", json.dumps(report, indent=1))
    assert report["acknowledged_writes_lost"] == 0
    assert report["failed_requests_not_in_flight_on_killed_replica"] == 0
    assert report["capture_budget_overrun"] == 0
    assert report["rate_limit_overrun"] == 0
    assert report["trainings_at_once"] == 1 and report["trainings"] >= 2


def soak(url: str, victim: ServiceProcess) -> dict:
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)
    fid = admin.post("/v1/functions", json={"name": "soak", "labels": ["red", "blue"]}).json()["id"]
    for seed in range(3):
        for name, colour in (("red", RED), ("blue", BLUE)):
            body = {
                "data": data_uri(png_bytes(colour, seed=seed)),
                "annotation": {"labelName": name},
            }
            assert admin.post(f"/v1/functions/{fid}/samples", json=body).status_code == 201
    # Capture far more than the budget allows, so the budget is what stops it: half of all invokes
    # in the random slice, and only exact duplicates suppressed. No mislabel suspects (set before
    # the first training): answering one relabels an upload, which the check below would count
    # as a lost write, and suspects are review items outside the capture budget it counts.
    policy = {"maxPerHour": HOUR_BUDGET, "maxPerDay": HOUR_BUDGET, "randomRate": 0.5}
    policy.update(duplicateSimilarity=1.0, suspectBudget=0)
    assert admin.put(f"/v1/functions/{fid}/capture-policy", json=policy).status_code == 200
    assert admin.post(f"/v1/functions/{fid}/train").status_code == 200
    limited = admin.post(
        "/v1/keys", json={"scopes": ["invoke"], "rateLimitPerMinute": LIMIT}
    ).json()

    rng = np.random.default_rng(0)

    def mixed(seed: int) -> str:
        share = rng.uniform(0.2, 0.8)  # between red and blue: the head is unsure, capture wants it
        colour = tuple(int(share * r + (1 - share) * b) for r, b in zip(RED, BLUE, strict=True))
        return data_uri(png_bytes(colour, seed=seed))  # type: ignore[arg-type]

    def upload(http: httpx.Client, i: int) -> httpx.Response:
        name, colour = (("red", RED), ("blue", BLUE))[i % 2]
        body = {
            "data": data_uri(png_bytes(colour, seed=10_000 + i)),
            "annotation": {"labelName": name},
        }
        return http.post(f"/v1/functions/{fid}/samples", json={**body, "externalId": f"u{i}"})

    def annotate(http: httpx.Client, i: int) -> httpx.Response:
        pending = http.get(f"/v1/functions/{fid}/review", params={"count": 1})
        items = pending.json().get("data", []) if pending.status_code == 200 else []
        if not items:
            time.sleep(0.2)
            return pending
        item = items[0]
        name = item["predictedLabel"] or "red"
        return http.post(
            f"/v1/functions/{fid}/review/{item['id']}/annotate", json={"labelName": name}
        )

    def invoke(offset: int) -> Callable[[httpx.Client, int], httpx.Response]:
        return lambda http, i: http.post(
            f"/v1/functions/{fid}/invoke", json={"data": mixed(offset + i)}
        )

    stop = threading.Event()
    recorder = Recorder(url, stop)
    workers = [
        recorder.worker("upload", ADMIN, upload),
        recorder.worker("annotate", ADMIN, annotate),
        recorder.worker("invoke", ADMIN, invoke(20_000)),
        recorder.worker("invoke", ADMIN, invoke(40_000)),
        recorder.worker("limited", limited["key"], invoke(60_000)),
    ]
    begin = time.monotonic()
    for worker in workers:
        worker.start()
    time.sleep(SECONDS / 3)
    kill_started = time.monotonic()
    victim.kill()
    killed = (kill_started, time.monotonic())
    time.sleep(max(0.0, begin + SECONDS / 2 - time.monotonic()))
    victim.start()
    time.sleep(max(0.0, begin + SECONDS - time.monotonic()))
    stop.set()
    for worker in workers:
        worker.join(timeout=120)
    return verify(admin, fid, recorder.calls, killed)


def verify(admin: httpx.Client, fid: str, calls: list[Call], killed: tuple[float, float]) -> dict:
    """``killed``: when the SIGKILL was sent and when the process was gone."""
    expected = {"upload": {201}, "annotate": {200}, "invoke": {200}, "limited": {200, 429}}
    failed = [c for c in calls if c.status not in expected[c.kind]]
    in_flight = [c for c in failed if c.started <= killed[1] and c.ended >= killed[0]]
    others = [c for c in failed if c not in in_flight]

    lost = 0
    for call in calls:
        if call.kind == "upload" and call.status == 201:
            got = admin.get(f"/v1/functions/{fid}/samples/{call.body['id']}")
            lost += got.status_code != 200 or got.json()["annotation"] != call.body["annotation"]
        if call.kind == "annotate" and call.status == 200 and call.body.get("sampleId"):
            got = admin.get(f"/v1/functions/{fid}/samples/{call.body['sampleId']}")
            labelled = got.status_code == 200 and got.json()["annotation"] is not None
            lost += not labelled or got.json()["annotation"]["labelName"] != call.body["labelName"]
    counts = admin.get(f"/v1/functions/{fid}/review/counts").json()
    captured = sum(counts.values())

    limited = sorted(
        (c for c in calls if c.kind == "limited" and c.status == 200), key=lambda c: c.started
    )
    allowed = len(limited)
    window = (limited[-1].ended - limited[0].started) if limited else 0.0
    bound = LIMIT + window * LIMIT / 60.0

    models = admin.get(f"/v1/functions/{fid}/models").json()["data"]
    spans = []
    for model in models:
        ended = datetime.fromisoformat(model["createdAt"]).timestamp()
        spans.append((ended - model["trainSeconds"], ended))
    return {
        "seconds": SECONDS,
        "requests": len(calls),
        "by_kind": {k: sum(c.kind == k for c in calls) for k in expected},
        "acknowledged_uploads": sum(c.kind == "upload" and c.status == 201 for c in calls),
        "acknowledged_annotations": sum(
            c.kind == "annotate" and c.status == 200 and "sampleId" in c.body for c in calls
        ),
        "acknowledged_writes_lost": lost,
        "failed_in_flight_on_killed_replica": len(in_flight),
        "failed_requests_not_in_flight_on_killed_replica": len(others),
        "other_failures": [
            (c.kind, c.status, str(c.body)[:160], round(c.started - killed[0], 3))
            for c in others[:5]
        ],
        "captures": captured,
        "capture_budget": HOUR_BUDGET,
        "capture_budget_overrun": max(0, captured - HOUR_BUDGET),
        "rate_limited_allowed": allowed,
        "rate_limit_bound": round(bound, 1),
        "rate_limit_overrun": max(0, allowed - int(bound)),
        "trainings": len(models),
        "trainings_at_once": max_overlap(spans),
    }

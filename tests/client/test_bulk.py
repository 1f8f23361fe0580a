"""Bulk helpers against a scripted service (httpx.MockTransport): bounded concurrency, resumable
uploads, per-item failures versus errors that stop the run, and batches split on 413."""

import asyncio
import base64
import json
import threading
import time

import httpx
import pytest
from winnow_client import AsyncClient, BadRequest, Client, Prediction, SampleUpload, Unauthorized

PRESENT = {"id": "s0", "functionId": "f", "externalId": "cat/0.png", "source": "upload"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


class FakeService:
    """Samples and batch invoke of one function ``f``; records the most requests in flight."""

    def __init__(self, *, key: str = "k", max_batch: int = 2) -> None:
        self.key, self.max_batch = key, max_batch
        self.uploaded: list[str] = []
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()

    def answer(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return httpx.Response(401, json={"message": "unknown key"})
        if request.method == "GET":
            return httpx.Response(200, json={"data": [PRESENT], "count": 1})
        body = json.loads(request.content)
        if request.url.path.endswith("/invoke/batch"):
            if len(body["items"]) > self.max_batch:
                return httpx.Response(413, json={"message": "too many images"})
            return httpx.Response(
                200, json={"data": [self.predict(i["data"]) for i in body["items"]]}
            )
        if base64.b64decode(body["data"].split(",")[1]) == b"corrupt":
            return httpx.Response(400, json={"message": "the data is not a recognisable image"})
        self.uploaded.append(body["externalId"])
        sample = {
            "id": f"s{len(self.uploaded)}",
            "functionId": "f",
            "externalId": body["externalId"],
        }
        return httpx.Response(201, json=sample)

    @staticmethod
    def predict(data: str) -> dict:
        if base64.b64decode(data.split(",")[1]) == b"corrupt":
            return {"status": 400, "message": "corrupt"}
        return {
            "labelName": "cat",
            "labelId": "l1",
            "confidence": 0.9,
            "labelConfidences": [],
            "modelVersion": 1,
        }

    def sync_handler(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(0.005)  # simulated latency, so requests overlap
        try:
            return self.answer(request)
        finally:
            with self.lock:
                self.in_flight -= 1

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.005)  # simulated latency, so requests overlap
        self.in_flight -= 1
        return self.answer(request)


def items() -> list[SampleUpload]:
    uploads = [SampleUpload(PNG, "cat", f"cat/{i}.png") for i in range(12)]
    return uploads + [SampleUpload(b"corrupt", "cat", "cat/bad.png")]


def test_upload_is_bounded_resumable_and_reports_bad_items() -> None:
    service = FakeService()
    http = httpx.Client(
        base_url="http://winnow", transport=httpx.MockTransport(service.sync_handler)
    )
    report = Client(http=http, api_key="k").upload_samples(
        "f", items(), concurrency=3, progress=False
    )
    assert report.skipped == ["cat/0.png"]  # already present: not sent again
    assert sorted(s.external_id for s in report.created) == sorted(
        f"cat/{i}.png" for i in range(1, 12)
    )
    assert [(name, error.status) for name, error in report.failed] == [("cat/bad.png", 400)]
    assert 1 < service.most_in_flight <= 3


def test_async_upload_is_bounded_the_same_way() -> None:
    service = FakeService()

    async def main():
        transport = httpx.MockTransport(service.async_handler)
        http = httpx.AsyncClient(base_url="http://winnow", transport=transport)
        async with AsyncClient(http=http, api_key="k") as winnow:
            return await winnow.upload_samples("f", items(), concurrency=3, progress=False)

    report = asyncio.run(main())
    assert report.uploaded == 11 and report.skipped == ["cat/0.png"] and len(report.failed) == 1
    assert 1 < service.most_in_flight <= 3


def test_an_error_of_the_whole_run_stops_the_upload() -> None:
    service = FakeService(key="other")
    http = httpx.Client(
        base_url="http://winnow", transport=httpx.MockTransport(service.sync_handler)
    )
    with pytest.raises(Unauthorized):
        Client(http=http, api_key="k").upload_samples("f", items(), progress=False)
    assert service.uploaded == []


def test_invoke_many_splits_batches_the_service_finds_too_large() -> None:
    service = FakeService(max_batch=2)
    http = httpx.Client(
        base_url="http://winnow", transport=httpx.MockTransport(service.sync_handler)
    )
    images = [PNG] * 4 + [b"corrupt"] + [PNG] * 2
    answers = Client(http=http, api_key="k").invoke_many("f", images, batch_size=5, concurrency=2)
    assert [isinstance(a, Prediction) for a in answers] == [True] * 4 + [False] + [True] * 2
    assert isinstance(answers[4], BadRequest) and answers[4].status == 400

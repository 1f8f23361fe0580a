"""The decode budget: while decoded pixels in flight fill it, large images wait briefly, then answer
503 with Retry-After on every path that decodes, writing nothing; images that fit still answer, and
a batch larger than the budget is embedded a part at a time instead of waiting for itself."""

from __future__ import annotations

import dataclasses
import io
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func
from sqlmodel import select

from api.app import create_app
from embeddings import PixelBudget
from service.runtime import DECODE_BYTES_PER_PIXEL, decode_pixel_budget, machine_memory_bytes
from service.settings import Settings
from store import ReviewItem, Sample, session_scope
from tests.conftest import AUTH, RED, data_uri, png_bytes

LARGE_SIDE = 1000  # LARGE: a flat 1000 x 1000 PNG, a few KB that decode to a megapixel
LARGE = LARGE_SIDE * LARGE_SIDE
SMALL = png_bytes(RED)  # 32 x 32
BUDGET = LARGE + 100_000  # one large image and a few small ones
DEADLINE_S = 30.0


def large_png(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (LARGE_SIDE, LARGE_SIDE), (seed % 256, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    settings = dataclasses.replace(settings, max_image_pixels=LARGE, decode_pixel_budget=BUDGET)
    with TestClient(create_app(settings), headers=AUTH) as test_client:
        runtime = test_client.app.state.runtime  # type: ignore[attr-defined]
        assert runtime.decode_budget.capacity == BUDGET
        runtime.decode_budget = PixelBudget(BUDGET, wait_s=0.2)  # a short wait keeps tests quick
        yield test_client


def poll(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def rows(client: TestClient) -> tuple[int, int]:
    """Samples and review items in the database."""
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    with session_scope(engine) as session:
        samples = session.exec(select(func.count()).select_from(Sample)).one()
        items = session.exec(select(func.count()).select_from(ReviewItem)).one()
    return samples, items


def assert_retry_later(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert "decode budget" in response.json()["message"]


def test_large_images_beyond_the_budget_get_503_while_small_ones_still_answer(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    fid = client.post("/v1/functions", json={"name": "budget"}).json()["id"]
    encoder = runtime.encoders.get("tiny-clip")
    encode, gate = encoder.encode, threading.Event()

    def gated(images: Sequence[Image.Image], timeout: float | None = None) -> Any:
        if any(image.width == LARGE_SIDE for image in images):
            assert gate.wait(DEADLINE_S)  # a large image stays decoded until the test lets go
        return encode(images, timeout)

    monkeypatch.setattr(encoder, "encode", gated)
    first: list[Any] = []
    holder = threading.Thread(
        target=lambda: first.append(
            client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(large_png())})
        )
    )
    holder.start()
    poll(lambda: runtime.decode_budget.reserved == LARGE)
    before = rows(client)

    answers: list[Any] = []
    lock = threading.Lock()

    def invoke_large(seed: int) -> None:
        body = {"data": data_uri(large_png(seed))}
        response = client.post(f"/v1/functions/{fid}/invoke", json=body)
        with lock:
            answers.append(response)

    burst = [threading.Thread(target=invoke_large, args=(seed,)) for seed in range(1, 5)]
    for thread in burst:
        thread.start()
    for thread in burst:
        thread.join(DEADLINE_S)
    assert len(answers) == 4
    for response in answers:
        assert_retry_later(response)

    large = data_uri(large_png(9))
    for path, body in (
        ("invoke/batch", {"items": [{"data": data_uri(SMALL)}, {"data": large}]}),
        ("samples", {"data": large, "annotation": {"labelName": "red"}}),
        ("search", {"data": large}),
    ):
        assert_retry_later(client.post(f"/v1/functions/{fid}/{path}", json=body))
    assert_retry_later(client.post(f"/nyckel/v1/functions/{fid}/samples", json={"data": large}))
    assert rows(client) == before  # the refused requests wrote nothing

    small = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(SMALL)})
    assert small.status_code == 200, small.text  # an image that fits is not held up

    gate.set()
    holder.join(DEADLINE_S)
    assert first[0].status_code == 200, first[0].text
    assert runtime.decode_budget.reserved == 0
    again = client.post(f"/v1/functions/{fid}/invoke", json={"data": large})
    assert again.status_code == 200, again.text
    assert runtime.decode_budget.reserved == 0


def test_a_batch_larger_than_the_budget_is_embedded_a_part_at_a_time(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    fid = client.post("/v1/functions", json={"name": "budget"}).json()["id"]
    encoder = runtime.encoders.get("tiny-clip")
    encode = encoder.encode
    calls: list[tuple[int, int]] = []  # (images, pixels reserved) per encoder call

    def counting(images: Sequence[Image.Image], timeout: float | None = None) -> Any:
        calls.append((len(images), runtime.decode_budget.reserved))
        return encode(images, timeout)

    monkeypatch.setattr(encoder, "encode", counting)
    items = [{"data": data_uri(large_png(seed))} for seed in range(3)]
    items.insert(1, {"data": data_uri(SMALL)})
    response = client.post(f"/v1/functions/{fid}/invoke/batch", json={"items": items})
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 4
    # Each large image waits for the one before it to be encoded, never for its own reservation.
    assert [count for count, _ in calls] == [2, 1, 1]
    assert all(reserved <= BUDGET for _, reserved in calls)
    assert runtime.decode_budget.reserved == 0


def test_the_budget_defaults_from_memory_and_fits_the_largest_image(tmp_path: Any) -> None:
    auto = Settings(data_dir=tmp_path)
    expected = machine_memory_bytes() // 4 // DECODE_BYTES_PER_PIXEL
    assert decode_pixel_budget(auto) == max(auto.max_image_pixels, expected)
    huge_images = dataclasses.replace(auto, max_image_pixels=10**15)
    assert decode_pixel_budget(huge_images) == 10**15  # the floor: one largest image fits
    chosen = dataclasses.replace(auto, decode_pixel_budget=50_000_000)
    assert decode_pixel_budget(chosen) == 50_000_000
    for too_small in (-1, auto.max_image_pixels - 1):
        with pytest.raises(ValueError, match="at least max_image_pixels"):
            decode_pixel_budget(dataclasses.replace(auto, decode_pixel_budget=too_small))

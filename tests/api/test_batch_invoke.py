"""POST /v1/functions/{id}/invoke/batch: single invoke's answers, many images, one encoder call."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from service import samples
from service.settings import Settings
from tests.api.test_bad_images import BAD_IMAGES
from tests.conftest import AUTH, BLUE, RED, add_colour_samples, data_uri, png_bytes

IMAGES = [png_bytes(RED, seed=90), png_bytes(BLUE, seed=91), png_bytes(RED, seed=92)]
IMAGES += [png_bytes(BLUE, seed=93), png_bytes((200, 120, 30), seed=94)]

# Entries whose data cannot be read at all (single invoke: 400).
BAD_DATA_URI = "data:image/png;base64,@@@"
FTP_URL = "ftp://example.com/x.png"


def trained(client: TestClient, name: str = "colour") -> str:
    fid = client.post("/v1/functions", json={"name": name}).json()["id"]
    add_colour_samples(client, fid, per_label=3)
    assert client.post(f"/v1/functions/{fid}/train").status_code == 200
    return fid


def batch(client: TestClient, fid: str, images: list[Any], **params: Any) -> Any:
    """Batch invoke with JSON items: bytes become data URIs, strings are sent as they are."""
    items = [{"data": data_uri(i) if isinstance(i, bytes) else i} for i in images]
    return client.post(f"/v1/functions/{fid}/invoke/batch", json={"items": items}, params=params)


def single(client: TestClient, fid: str, image: bytes | str, **params: Any) -> Any:
    data = data_uri(image) if isinstance(image, bytes) else image
    return client.post(f"/v1/functions/{fid}/invoke", json={"data": data}, params=params)


def assert_same_answer(entry: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal up to float noise: the encoder may batch the images differently."""
    assert entry["labelName"] == expected["labelName"]
    assert entry["labelId"] == expected["labelId"]
    assert entry["modelVersion"] == expected["modelVersion"]
    assert entry["confidence"] == pytest.approx(expected["confidence"], abs=1e-5)
    names = [c["labelName"] for c in entry["labelConfidences"]]
    assert names == [c["labelName"] for c in expected["labelConfidences"]]
    for got, want in zip(entry["labelConfidences"], expected["labelConfidences"], strict=True):
        assert got == {**want, "confidence": pytest.approx(want["confidence"], abs=1e-5)}


def test_answers_equal_single_invoke_in_order_json_and_multipart(client: TestClient) -> None:
    fid = trained(client)
    expected = [single(client, fid, image, capture="false").json() for image in IMAGES]

    as_json = batch(client, fid, IMAGES, capture="false")
    assert as_json.status_code == 200, as_json.text
    files = [("file", (f"{i}.png", image, "image/png")) for i, image in enumerate(IMAGES)]
    as_files = client.post(
        f"/v1/functions/{fid}/invoke/batch", files=files, params={"capture": "false"}
    )
    assert as_files.status_code == 200, as_files.text

    for response in (as_json, as_files):
        entries = response.json()["data"]
        assert len(entries) == len(IMAGES)
        for entry, want in zip(entries, expected, strict=True):
            assert_same_answer(entry, want)
            assert entry["capture"] is None
    assert [e["labelName"] for e in expected[:4]] == ["red", "blue", "red", "blue"]


def test_one_encoder_call_for_the_batch(client: TestClient, monkeypatch) -> None:
    fid = trained(client)
    rt = client.app.state.runtime  # type: ignore[attr-defined]
    encoder = rt.encoders.get("tiny-clip")
    calls: list[int] = []
    encode = encoder.encode

    def counting(images, timeout=None):  # type: ignore[no-untyped-def]
        calls.append(len(images))
        return encode(images, timeout)

    monkeypatch.setattr(encoder, "encode", counting)
    with_a_bad_one = [*IMAGES, BAD_IMAGES["random bytes"][0]]
    assert batch(client, fid, with_a_bad_one, capture="false").status_code == 200
    assert calls == [len(IMAGES)]  # the bad image never reaches the encoder

    # Large decoded images are embedded in several calls instead of all held at once.
    calls.clear()
    monkeypatch.setattr(samples, "DECODED_PIXELS_PER_CALL", 2 * 32 * 32)
    chunked = batch(client, fid, IMAGES, capture="false").json()["data"]
    assert calls == [2, 2, 1]
    unchunked = [single(client, fid, image, capture="false").json() for image in IMAGES]
    for entry, want in zip(chunked, unchunked, strict=True):
        assert_same_answer(entry, want)


def test_a_bad_image_fails_only_its_own_entry(client: TestClient) -> None:
    fid = trained(client)
    bad: list[bytes | str] = [data for data, _ in BAD_IMAGES.values()] + [BAD_DATA_URI, FTP_URL]
    mixed = [IMAGES[0], *bad[:3], IMAGES[1], *bad[3:], IMAGES[2]]
    response = batch(client, fid, mixed, capture="false")
    assert response.status_code == 200, response.text
    entries = response.json()["data"]
    assert len(entries) == len(mixed)
    for entry, image in zip(entries, mixed, strict=True):
        alone = single(client, fid, image, capture="false")
        if image in bad:
            assert 400 <= alone.status_code < 500
            assert entry == {"status": alone.status_code, "message": alone.json()["message"]}
        else:
            assert_same_answer(entry, alone.json())
    statuses = [status for _, status in BAD_IMAGES.values()] + [400, 400]
    assert [e["status"] for e in entries if "status" in e] == statuses

    files = [("file", ("a.png", IMAGES[0], "image/png"))]
    files += [("file", (name, data)) for name, (data, _) in BAD_IMAGES.items()]
    entries = client.post(f"/v1/functions/{fid}/invoke/batch", files=files).json()["data"]
    assert entries[0]["labelName"] == "red"
    assert [e["status"] for e in entries[1:]] == [status for _, status in BAD_IMAGES.values()]

    # Only bad images: their own errors, as single invoke gives them, even before any model.
    untrained = client.post("/v1/functions", json={"name": "untrained"}).json()["id"]
    entries = batch(client, untrained, [BAD_DATA_URI, *bad[:2]]).json()["data"]
    for entry, image in zip(entries, [BAD_DATA_URI, *bad[:2]], strict=True):
        alone = single(client, untrained, image)
        assert entry == {"status": alone.status_code, "message": alone.json()["message"]}


def test_whole_request_errors(client: TestClient) -> None:
    fid = trained(client)
    url = f"/v1/functions/{fid}/invoke/batch"
    missing = batch(client, "function_missing", IMAGES[:2])
    assert missing.status_code == 404 and "function_missing" in missing.json()["message"]
    untrained = client.post("/v1/functions", json={"name": "untrained"}).json()["id"]
    no_model = batch(client, untrained, IMAGES[:2])  # before any model: no label per entry
    assert no_model.status_code == 200, no_model.text
    assert [e["labelName"] for e in no_model.json()["data"]] == [None, None]
    assert batch(client, fid, IMAGES[:2], version=7).status_code == 404

    empty = client.post(url, json={"items": []})
    assert empty.status_code == 422 and "items" in empty.json()["message"]
    assert client.post(url, json={"data": data_uri(IMAGES[0])}).status_code == 422
    assert client.post(url, json={"items": [{"data": ""}]}).status_code == 422
    malformed = client.post(
        url, content=b'{"items": [', headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400 and "JSON" in malformed.json()["message"]
    wrong_type = client.post(url, content=b"x", headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415 and "items" in wrong_type.json()["message"]
    other_part = client.post(url, files={"other": ("x.png", IMAGES[0])})
    assert other_part.status_code == 422 and "'file'" in other_part.json()["message"]
    text_part = client.post(url, files={"file": (None, "not a file")})
    assert text_part.status_code == 400 and "'file'" in text_part.json()["message"]
    unauthenticated = client.post(
        url, json={"items": [{"data": data_uri(IMAGES[0])}]}, headers={"Authorization": ""}
    )
    assert unauthenticated.status_code == 401


def test_too_many_images_refuse_the_whole_request(settings: Settings) -> None:
    small = dataclasses.replace(settings, max_batch_invoke=2)
    with TestClient(create_app(small), headers=AUTH) as client:
        fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
        url = f"/v1/functions/{fid}/invoke/batch"
        as_json = batch(client, fid, IMAGES[:3])
        assert as_json.status_code == 413
        assert "at most 2 images" in as_json.json()["message"]
        files = [("file", (f"{i}.png", image, "image/png")) for i, image in enumerate(IMAGES[:3])]
        as_files = client.post(url, files=files)
        assert as_files.status_code == 413
        assert "at most 2 images" in as_files.json()["message"]
        assert batch(client, fid, IMAGES[:2]).status_code == 200  # within the limit (no model)


def test_captures_per_image_as_single_invoke(client: TestClient) -> None:
    """Each image is judged for capture in turn, as a sequence of single invokes would be."""
    policy = {"randomRate": 1.0, "duplicateSimilarity": 1.0}  # capture all but exact copies
    sequence = [IMAGES[4], IMAGES[0], IMAGES[4]]
    one_by_one, batched = trained(client, "single"), trained(client, "batched")
    for fid in (one_by_one, batched):
        assert client.put(f"/v1/functions/{fid}/capture-policy", json=policy).status_code == 200

    skipped = batch(client, batched, sequence, capture="false").json()["data"]
    assert [e["capture"] for e in skipped] == [None, None, None]
    assert client.get(f"/v1/functions/{batched}/review/counts").json()["pending"] == 0

    singles = [single(client, one_by_one, image).json()["capture"] for image in sequence]
    entries = batch(client, batched, sequence).json()["data"]
    captures = [entry["capture"] for entry in entries]
    assert [c["captured"] for c in captures] == [True, True, False]  # the repeat is a duplicate
    assert [(c["captured"], c["reason"]) for c in captures] == [
        (c["captured"], c["reason"]) for c in singles
    ]
    item_ids = [c["itemId"] for c in captures if c["captured"]]
    assert len(set(item_ids)) == 2
    assert client.get(f"/v1/functions/{batched}/review/counts").json()["pending"] == 2
    queued = client.get(f"/v1/functions/{batched}/review").json()["data"]
    assert {item["id"] for item in queued} == set(item_ids)


def test_version_applies_to_every_image(client: TestClient) -> None:
    fid = trained(client)
    assert client.post(f"/v1/functions/{fid}/train").json()["version"] == 2
    other = 1 if client.get(f"/v1/functions/{fid}").json()["deployedVersion"] == 2 else 2
    entries = batch(client, fid, IMAGES[:2], version=other).json()["data"]
    assert [e["modelVersion"] for e in entries] == [other, other]
    assert all(e["capture"] is None for e in entries)  # another version is never captured
    for entry, image in zip(entries, IMAGES[:2], strict=True):
        assert_same_answer(entry, single(client, fid, image, version=other).json())


def test_label_count_keeps_the_most_likely_labels_single_and_batch(client: TestClient) -> None:
    fid = trained(client)
    full = single(client, fid, IMAGES[0], capture="false").json()
    assert len(full["labelConfidences"]) == 2

    one = single(client, fid, IMAGES[0], capture="false", labelCount=1).json()
    assert one["labelConfidences"] == [full["labelConfidences"][0]]
    assert (one["labelName"], one["confidence"]) == (full["labelName"], full["confidence"])
    more = single(client, fid, IMAGES[0], capture="false", labelCount=5).json()
    assert more["labelConfidences"] == full["labelConfidences"]

    entries = batch(client, fid, [IMAGES[1], BAD_DATA_URI], capture="false", labelCount=1)
    first, bad = entries.json()["data"]
    best = single(client, fid, IMAGES[1], capture="false").json()["labelConfidences"][0]
    assert [c["labelName"] for c in first["labelConfidences"]] == [best["labelName"]]
    assert bad["status"] == 400

    for wrong in ("0", "-1", "two"):
        response = single(client, fid, IMAGES[0], labelCount=wrong)
        assert response.status_code == 422, response.text

import pytest
from fastapi.testclient import TestClient

from tests.conftest import BLUE, RED, add_colour_samples, data_uri, png_bytes

# Runs on SQLite and on a fresh PostgreSQL database (tests/databases.py).
pytestmark = pytest.mark.databases


def test_train_then_invoke(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
    before = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes(RED))})
    assert before.status_code == 200, before.text  # before any model: no label (cold start)
    assert before.json()["labelName"] is None and before.json()["modelVersion"] is None

    add_colour_samples(client, fid)
    trained = client.post(f"/v1/functions/{fid}/train")
    assert trained.status_code == 200, trained.text
    version = trained.json()
    assert version["version"] == 1 and version["status"] == "deployed"
    assert version["sampleCount"] == 12 and sorted(version["labels"]) == ["blue", "red"]
    assert 0.0 <= version["metrics"]["accuracy"] <= 1.0

    for colour, expected in ((RED, "red"), (BLUE, "blue")):
        result = client.post(
            f"/v1/functions/{fid}/invoke", json={"data": data_uri(png_bytes(colour, seed=99))}
        )
        assert result.status_code == 200, result.text
        body = result.json()
        assert body["labelName"] == expected and body["modelVersion"] == 1
        assert abs(sum(c["confidence"] for c in body["labelConfidences"]) - 1) < 1e-6
        assert body["labelConfidences"][0]["labelName"] == expected
        assert body["labelId"].startswith("label_")

    files = {"file": ("x.png", png_bytes(RED, seed=5), "image/png")}
    assert client.post(f"/v1/functions/{fid}/invoke", files=files).json()["labelName"] == "red"

    models = client.get(f"/v1/functions/{fid}/models").json()
    assert models["count"] == 2  # and the zero-shot version 0 it beat (tiny-clip has text)
    metrics = client.get(f"/v1/functions/{fid}/metrics").json()
    assert metrics["version"] == 1
    assert len(metrics["metrics"]["confusionMatrix"]) == 2
    assert set(metrics["metrics"]["perLabel"]) == {"red", "blue"}
    png = client.get(f"/v1/functions/{fid}/metrics/confusion-matrix.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")

    retrained = client.post(f"/v1/functions/{fid}/train").json()
    assert retrained["version"] == 2 and retrained["parentVersion"] == 1
    statuses = {
        m["version"]: m["status"] for m in client.get(f"/v1/functions/{fid}/models").json()["data"]
    }
    assert statuses == {0: "retired", 1: "retired", 2: "deployed"}


def test_train_needs_two_labels(client: TestClient) -> None:
    fid = client.post("/v1/functions", json={"name": "one"}).json()["id"]
    body = {"data": data_uri(png_bytes(RED)), "annotation": {"labelName": "red"}}
    client.post(f"/v1/functions/{fid}/samples", json=body)
    response = client.post(f"/v1/functions/{fid}/train")
    assert response.status_code == 409 and "2 labels" in response.json()["message"]
    assert client.get(f"/v1/functions/{fid}/models").json()["count"] == 0


def test_concurrent_invokes_each_get_their_own_answer(client: TestClient) -> None:
    """Invokes answered together (one encoder batch; head and capture run once for the batch's
    requests, service.combining) answer exactly as each alone: no request gets another's."""
    import threading

    fid = client.post("/v1/functions", json={"name": "colour"}).json()["id"]
    add_colour_samples(client, fid)
    assert client.post(f"/v1/functions/{fid}/train").status_code == 200
    # reds and blues in turn: a request given its neighbour's answer gets the other label
    images = [png_bytes(RED if i % 2 else BLUE, seed=100 + i) for i in range(8)]

    def answer(data: bytes, capture: bool) -> tuple[str, float]:
        response = client.post(
            f"/v1/functions/{fid}/invoke?capture={str(capture).lower()}",
            json={"data": data_uri(data)},
        )
        assert response.status_code == 200, response.text
        return response.json()["labelName"], response.json()["confidence"]

    alone = [answer(data, capture=False) for data in images]
    assert [label for label, _ in alone] == ["blue", "red"] * 4

    def burst(capture: bool) -> list[tuple[str, float] | None]:
        together: list[tuple[str, float] | None] = [None] * len(images)
        start = threading.Barrier(len(images))

        def invoke(i: int) -> None:
            start.wait()
            together[i] = answer(images[i], capture)

        threads = [threading.Thread(target=invoke, args=(i,)) for i in range(len(images))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        return together

    for capture in (False, True, False, True, False, True):  # bursts: batches form by timing
        for mine, expected in zip(burst(capture), alone, strict=True):
            assert mine is not None
            assert mine[0] == expected[0] and mine[1] == pytest.approx(expected[1], abs=1e-6)

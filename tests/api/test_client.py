from fastapi.testclient import TestClient

from api.client import Client, Prediction, WinnowError
from tests.conftest import BLUE, RED, png_bytes


def test_client_workflow(client: TestClient, tmp_path) -> None:
    winnow = Client(http=client)
    fn = winnow.create_function("IsRed", labels=["red", "blue"])
    red_path = tmp_path / "red.png"
    red_path.write_bytes(png_bytes(RED, seed=1))
    items = [(png_bytes(RED, seed=i), "red") for i in range(4)] + [
        (png_bytes(BLUE, seed=i), "blue") for i in range(4)
    ]
    first = fn.create_samples(items, progress=False)
    again = fn.create_samples(items, progress=False)  # a rerun after a failure adds nothing
    assert [s["id"] for s in first] == [s["id"] for s in again]
    assert len(fn.samples()) == 8
    assert fn.train()["version"] == 1
    prediction = fn(red_path)
    assert prediction.label_name == "red" and prediction.model_version == 1
    assert [f.id for f in winnow.functions()] == [fn.id]
    try:
        winnow.function("function_missing")
    except WinnowError as exc:
        assert exc.status == 404
    else:
        raise AssertionError("expected a 404")


def test_client_invoke_batch(client: TestClient) -> None:
    winnow = Client(http=client)
    fn = winnow.create_function("IsRed", labels=["red", "blue"])
    items = [(png_bytes(RED, seed=i), "red") for i in range(3)]
    items += [(png_bytes(BLUE, seed=i), "blue") for i in range(3)]
    fn.create_samples(items, progress=False)
    fn.train()
    images = [png_bytes(RED, seed=10), b"not an image", png_bytes(BLUE, seed=11)]
    red, bad, blue = fn.invoke_batch(images, capture=False)
    assert isinstance(red, Prediction) and red.label_name == "red" and red.capture is None
    assert isinstance(blue, Prediction) and blue.label_name == "blue"
    assert red.model_version == blue.model_version == 1
    assert red.label_name == fn(images[0], capture=False).label_name
    assert isinstance(bad, WinnowError) and bad.status == 400 and bad.message
    try:
        fn.invoke_batch([])
    except WinnowError as exc:
        assert exc.status == 422
    else:
        raise AssertionError("expected a 422")

"""A small Python client for winnow, in the spirit of Nyckel's SDK.

from api.client import Client
client = Client("http://127.0.0.1:8000", api_key="...")
fn = client.create_function("IsCatOrDog", labels=["cat", "dog"])
fn.create_samples([("cat1.jpg", "cat"), ("dog1.jpg", "dog")])
fn.train()
print(fn("new.jpg").label_name)
"""

from __future__ import annotations

import base64
import hashlib
import io
import mimetypes
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ImageLike = str | Path | bytes | Any  # Any: a PIL image


class WinnowError(Exception):
    """The service answered with an error; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass
class Prediction:
    label_name: str
    label_id: str
    confidence: float
    model_version: int
    label_confidences: list[dict[str, Any]] = field(default_factory=list)
    capture: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, result: dict[str, Any]) -> Prediction:
        return cls(
            label_name=result["labelName"],
            label_id=result["labelId"],
            confidence=result["confidence"],
            model_version=result["modelVersion"],
            label_confidences=result["labelConfidences"],
            capture=result.get("capture"),
        )


class Client:
    """Talks to one winnow service.

    Args:
        url: base URL of the service.
        api_key: sent as ``Authorization: Bearer <key>`` when given.
        timeout: seconds per request.
        retries: attempts for connection errors, 429 and 503 (with ``Retry-After``) and other 5xx.
        http: an ``httpx.Client`` to use instead of a new one (tests pass a TestClient).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 4,
        http: httpx.Client | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = http or httpx.Client(base_url=url, timeout=timeout)
        self._http.headers.update(headers)
        self.retries = retries

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request with retries on transient failures; return the decoded JSON (or None)."""
        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                time.sleep(delay)
                delay *= 2
                continue
            transient = response.status_code in (429, 502, 503, 504)
            if transient and attempt < self.retries:
                wait = float(response.headers.get("Retry-After", delay))
                time.sleep(min(wait, 30.0))
                delay *= 2
                continue
            if response.status_code >= 400:
                try:
                    message = response.json().get("message", response.text)
                except ValueError:
                    message = response.text
                raise WinnowError(response.status_code, message)
            if response.status_code == 204 or not response.content:
                return None
            if response.headers.get("content-type", "").startswith("application/json"):
                return response.json()
            return response.content
        raise AssertionError("unreachable")  # pragma: no cover

    def create_function(
        self, name: str, labels: Iterable[str] = (), *, backbone: str | None = None
    ) -> Function:
        body: dict[str, Any] = {"name": name, "labels": list(labels)}
        if backbone:
            body["backbone"] = backbone
        return Function(self, self.request("POST", "/v1/functions", json=body))

    def function(self, function_id: str) -> Function:
        return Function(self, self.request("GET", f"/v1/functions/{function_id}"))

    def functions(self) -> list[Function]:
        return [Function(self, f) for f in self.request("GET", "/v1/functions")["data"]]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Function:
    """A classification function: add samples, train, and call it like a function."""

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self._client = client
        self.data = data
        self.id: str = data["id"]
        self.name: str = data["name"]

    def __repr__(self) -> str:
        return f"Function(id={self.id!r}, name={self.name!r})"

    @property
    def _path(self) -> str:
        return f"/v1/functions/{self.id}"

    def create_sample(
        self, image: ImageLike, label: str | None = None, *, external_id: str | None = None
    ) -> dict[str, Any]:
        """Upload one image; a retried upload returns the same sample (its externalId is derived
        from the image and label unless given)."""
        data = _data_field(image)
        if external_id is None and not data.startswith("http"):
            external_id = "sha256:" + hashlib.sha256(f"{data}\0{label}".encode()).hexdigest()
        body: dict[str, Any] = {"data": data}
        if label is not None:
            body["annotation"] = {"labelName": label}
        if external_id is not None:
            body["externalId"] = external_id
        return self._client.request("POST", f"{self._path}/samples", json=body)  # type: ignore[no-any-return]

    def create_samples(
        self, items: Iterable[tuple[ImageLike, str | None]], *, progress: bool = True
    ) -> list[dict[str, Any]]:
        """Upload ``(image, label)`` pairs with a progress bar; safe to rerun after a failure."""
        from tqdm import tqdm

        items = list(items)
        bar = tqdm(items, desc=f"samples -> {self.name}", unit="img", disable=not progress)
        return [self.create_sample(image, label) for image, label in bar]

    def samples(self, *, annotated: bool | None = None, count: int = 1000) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"count": count}
        if annotated is not None:
            params["annotated"] = str(annotated).lower()
        return self._client.request("GET", f"{self._path}/samples", params=params)["data"]  # type: ignore[no-any-return]

    def train(self) -> dict[str, Any]:
        """Train now; returns the new model version with its cross-validated metrics."""
        return self._client.request("POST", f"{self._path}/train")  # type: ignore[no-any-return]

    def models(self) -> list[dict[str, Any]]:
        return self._client.request("GET", f"{self._path}/models")["data"]  # type: ignore[no-any-return]

    def invoke(self, image: ImageLike, *, capture: bool = True) -> Prediction:
        result = self._client.request(
            "POST",
            f"{self._path}/invoke",
            json={"data": _data_field(image)},
            params={"capture": str(capture).lower()},
        )
        return Prediction.from_json(result)

    __call__ = invoke

    def invoke_batch(
        self, images: Iterable[ImageLike], *, capture: bool = True
    ) -> list[Prediction | WinnowError]:
        """Classify several images in one request (at most the server's --max-batch-invoke).

        Returns one entry per image, in order: its prediction, or the WinnowError of an image
        that failed on its own (a bad image fails alone; errors of the whole request raise).
        """
        result = self._client.request(
            "POST",
            f"{self._path}/invoke/batch",
            json={"items": [{"data": _data_field(image)} for image in images]},
            params={"capture": str(capture).lower()},
        )
        return [
            WinnowError(entry["status"], entry["message"])
            if "status" in entry
            else Prediction.from_json(entry)
            for entry in result["data"]
        ]

    def delete(self) -> None:
        self._client.request("DELETE", self._path)


def _data_field(image: ImageLike) -> str:
    """A data URI for a path, bytes or PIL image; URLs pass through."""
    if isinstance(image, str) and image.startswith(("http://", "https://", "data:")):
        return image
    if isinstance(image, str | Path):
        path = Path(image)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        raw = path.read_bytes()
    elif isinstance(image, bytes | bytearray):
        mime, raw = "application/octet-stream", bytes(image)
    elif hasattr(image, "save"):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        mime, raw = "image/png", buffer.getvalue()
    else:
        raise TypeError(f"cannot send {type(image).__name__} as an image")
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"

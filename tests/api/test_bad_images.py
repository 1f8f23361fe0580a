"""Bad images get a clear 4xx and leave no sample row and no blob behind."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.settings import Settings
from tests.conftest import RED, data_uri, png_bytes


def _png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A few-hundred-byte PNG whose header claims width x height pixels."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _tiff() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), RED).save(buffer, format="TIFF")
    return buffer.getvalue()


BAD_IMAGES = {
    "zero bytes": (b"", 400),
    "random bytes": (np.random.default_rng(0).bytes(4096), 400),
    "truncated png": (png_bytes(RED, size=64)[:200], 400),
    "decompression bomb": (_png_bomb(), 413),
    "tiff": (_tiff(), 415),
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_image_is_rejected_without_residue(
    client: TestClient, settings: Settings, name: str
) -> None:
    data, status = BAD_IMAGES[name]
    fid = client.post("/v1/functions", json={"name": "f", "labels": ["red"]}).json()["id"]
    json_response = client.post(
        f"/v1/functions/{fid}/samples",
        json={"data": data_uri(data), "annotation": {"labelName": "red"}},
    )
    multipart = client.post(f"/v1/functions/{fid}/samples", files={"file": ("x", data)})
    invoke = client.post(f"/v1/functions/{fid}/invoke", json={"data": data_uri(data)})
    for response in (json_response, multipart, invoke):
        assert response.status_code == status, (name, response.status_code, response.text)
        assert response.json()["message"]
    assert client.get(f"/v1/functions/{fid}/samples").json()["count"] == 0
    assert not [p for p in Path(settings.data_dir, "blobs").rglob("*") if p.is_file()]


def test_body_over_limit_is_413(tmp_path: Path) -> None:
    from api.app import create_app

    settings = Settings(
        data_dir=tmp_path, backbone="tiny-clip", retrain_interval=0, max_body_mb=0.01, admin_key="k"
    )
    with TestClient(create_app(settings), headers={"Authorization": "Bearer k"}) as client:
        fid = client.post("/v1/functions", json={"name": "f"}).json()["id"]
        big = data_uri(np.random.default_rng(1).bytes(20_000))
        response = client.post(f"/v1/functions/{fid}/samples", json={"data": big})
        assert response.status_code == 413
        assert client.get(f"/v1/functions/{fid}/samples").json()["count"] == 0

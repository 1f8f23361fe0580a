"""EncoderPool: lazy, shared, once-only backbone loading per spec and the default spec."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PIL import Image

import embeddings.clip_loading as clip_loading
from embeddings import EncoderClosed, EncoderPool


def test_encoders_are_loaded_lazily_and_shared() -> None:
    with EncoderPool("tiny-clip", device="cpu", max_batch=4) as pool:
        assert pool.loaded() == []
        assert pool.resolve(None) == "tiny-clip"
        assert pool.resolve("auto") == "tiny-clip"
        assert pool.loaded() == ["tiny-clip"]
        encoder = pool.get("tiny-clip")
        assert pool.get("") is encoder and pool.get(" tiny-clip ") is encoder
        assert encoder.encode([Image.new("RGB", (9, 9))]).shape == (1, 32)


def test_encoders_get_the_pools_torch_threads() -> None:
    with EncoderPool("tiny-clip", device="cpu", torch_threads=1) as pool:
        assert pool.get("").torch_threads == 1


def test_concurrent_first_use_loads_once() -> None:
    with EncoderPool("tiny-clip", device="cpu") as pool:
        got = []
        threads = [
            threading.Thread(target=lambda: got.append(pool.get("tiny-clip"))) for _ in "abcd"
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(got) == 4 and all(encoder is got[0] for encoder in got)


def test_resolve_validates_without_loading() -> None:
    with EncoderPool("tiny-clip") as pool:
        assert pool.resolve("clip:ViT-B-32/laion2b_s34b_b79k") == "clip:ViT-B-32/laion2b_s34b_b79k"
        with pytest.raises(ValueError, match="valid backbone specs"):
            pool.resolve("resnet-9000")
        assert pool.loaded() == []
    with pytest.raises(ValueError):
        EncoderPool("nonsense")


def test_close_closes_every_encoder() -> None:
    pool = EncoderPool("tiny-clip", device="cpu")
    encoder = pool.get("tiny-clip")
    pool.close()
    assert encoder.closed
    with pytest.raises(EncoderClosed):
        pool.get("efficientnet-lite0")


def test_auto_default_resolves_to_the_backbone_actually_loaded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(clip_loading, "hub_unreachable_reason", lambda *a, **k: "test: offline")
    with EncoderPool("auto", device="cpu", cache_dir=str(tmp_path)) as pool:
        assert pool.default_spec == "efficientnet-lite0"
        assert pool.resolve(None) == "efficientnet-lite0"
        assert pool.get("auto") is pool.get("efficientnet-lite0")
        assert pool.loaded() == ["efficientnet-lite0"]

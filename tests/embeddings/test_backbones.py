"""load_backbone: spec parsing, tiny-clip behaviour, checkpoint files, cache-only CLIP loading."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import embeddings.clip_loading as clip_loading
from embeddings import (
    DEFAULT_CLIP_SPEC,
    Backbone,
    BackboneUnavailable,
    cached_clip_weights,
    canonical_backbone_spec,
    load_backbone,
    parse_clip_spec,
    resolve_device,
)
from embeddings.clip_backbone import ClipBackbone


def colour_images() -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)),
        Image.new("RGB", (64, 48), (200, 30, 30)),
        Image.new("RGB", (20, 20), (30, 30, 200)),
    ]


def encode_all(backbone: Backbone, images: list[Image.Image]) -> np.ndarray:
    return backbone.encode(torch.stack([backbone.preprocess(image) for image in images]))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the Hugging Face hub is unreachable (tests never use the network)."""
    monkeypatch.setattr(clip_loading, "hub_unreachable_reason", lambda *a, **k: "test: offline")


def test_tiny_clip_runs_the_open_clip_path(tiny_backbone: Backbone) -> None:
    assert isinstance(tiny_backbone, Backbone) and isinstance(tiny_backbone, ClipBackbone)
    assert tiny_backbone.spec == "tiny-clip"
    assert tiny_backbone.dim == 32
    assert tiny_backbone.device == torch.device("cpu")
    tensor = tiny_backbone.preprocess(Image.new("RGB", (50, 40)))
    assert tensor.shape == (3, 32, 32) and tensor.dtype == torch.float32

    vectors = encode_all(tiny_backbone, colour_images())
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors[1] - vectors[2]).max() > 1e-3  # different images, different vectors


def test_tiny_clip_is_deterministic_and_leaves_the_global_rng_alone(
    tiny_backbone: Backbone,
) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    again = load_backbone("tiny-clip", device="cpu")
    assert torch.equal(torch.rand(3), expected_next)
    np.testing.assert_allclose(
        encode_all(again, colour_images()), encode_all(tiny_backbone, colour_images()), atol=1e-6
    )


def test_tiny_clip_encodes_text_into_the_image_space(tiny_backbone: Backbone) -> None:
    text = tiny_backbone.encode_text(["a photo of a cat", "a photo of a dog"])
    assert text is not None and text.shape == (2, 32) and text.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    assert np.abs(text[0] - text[1]).max() > 1e-3
    empty = tiny_backbone.encode_text([])
    assert empty is not None and empty.shape == (0, 32)


def test_empty_batch(tiny_backbone: Backbone) -> None:
    assert tiny_backbone.encode(torch.zeros((0, 3, 32, 32))).shape == (0, 32)


@pytest.mark.parametrize("spec", ["", "resnet50", "clip", "clip:", "efficientnet-b7", "Auto!"])
def test_unknown_spec_lists_the_valid_forms(spec: str) -> None:
    with pytest.raises(ValueError, match="valid backbone specs: clip:<arch>/<pretrained tag>"):
        load_backbone(spec)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("clip:ViT-B-32", "expected clip:<arch>/"),
        ("clip:No-Such-Arch/laion2b_s34b_b79k", "unknown open_clip architecture"),
        ("clip:ViT-B-32/not_a_tag", "neither a pretrained tag"),
        ("clip:hf-hub:just-a-name", "expected clip:hf-hub:<org>/<repo>"),
    ],
)
def test_malformed_clip_specs(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        load_backbone(spec)
    with pytest.raises(ValueError, match=problem):
        canonical_backbone_spec(spec)


def test_clip_spec_parsing() -> None:
    tag = parse_clip_spec(DEFAULT_CLIP_SPEC)
    assert (tag.kind, tag.arch, tag.weights, tag.spec) == (
        "tag",
        "ViT-B-32",
        "laion2b_s34b_b79k",
        DEFAULT_CLIP_SPEC,
    )
    path = parse_clip_spec("clip:ViT-B-32//abs/path/ckpt.pt")
    assert (path.kind, path.arch, path.weights) == ("file", "ViT-B-32", "/abs/path/ckpt.pt")
    assert path.spec == "clip:ViT-B-32//abs/path/ckpt.pt"
    hub = parse_clip_spec("clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
    assert (hub.kind, hub.weights) == ("hf-hub", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
    assert canonical_backbone_spec("  tiny-clip ") == "tiny-clip"
    assert canonical_backbone_spec("auto") == "auto"


def test_local_checkpoint_file(tiny_backbone: ClipBackbone, tmp_path: Path) -> None:
    checkpoint = tmp_path / "tiny.pt"
    torch.save(tiny_backbone.model.state_dict(), checkpoint)
    loaded = load_backbone(f"clip:tiny-clip/{checkpoint}", device="cpu")
    assert loaded.spec == f"clip:tiny-clip/{checkpoint}"
    np.testing.assert_allclose(
        encode_all(loaded, colour_images()), encode_all(tiny_backbone, colour_images()), atol=1e-6
    )


def test_missing_checkpoint_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(BackboneUnavailable, match="does not exist"):
        load_backbone(f"clip:tiny-clip/{tmp_path / 'missing.pt'}")


def test_corrupt_checkpoint_file_is_unavailable(tmp_path: Path) -> None:
    checkpoint = tmp_path / "broken.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneUnavailable, match="cannot load clip:tiny-clip/"):
        load_backbone(f"clip:tiny-clip/{checkpoint}")


def test_uncached_tag_without_hub_fails_fast(offline: None, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(BackboneUnavailable, match="not in the local cache.*test: offline"):
        load_backbone(DEFAULT_CLIP_SPEC, cache_dir=str(tmp_path))
    assert time.monotonic() - started < 5


def fake_hub_cache(cache_dir: Path, repo_id: str, filename: str, content: bytes) -> Path:
    """Lay out one file the way huggingface_hub caches it (refs/main -> snapshot)."""
    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_bytes(content)
    return snapshot / filename


def test_cached_clip_weights_reads_the_hub_cache_without_network(
    offline: None, tmp_path: Path
) -> None:
    assert cached_clip_weights("ViT-B-32", "laion2b_s34b_b79k", str(tmp_path)) is None
    weights = fake_hub_cache(
        tmp_path,
        "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        "open_clip_model.safetensors",
        b"garbage",
    )
    assert cached_clip_weights("ViT-B-32", "laion2b_s34b_b79k", str(tmp_path)) == str(weights)
    # A cached file is loaded straight from disk (no hub needed); a broken one is reported.
    with pytest.raises(BackboneUnavailable, match="cannot load clip:ViT-B-32/laion2b_s34b_b79k"):
        load_backbone(DEFAULT_CLIP_SPEC, device="cpu", cache_dir=str(tmp_path))


def test_auto_falls_back_to_the_offline_backbone(
    offline: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="embeddings.backbones"):
        backbone = load_backbone("auto", device="cpu", cache_dir=str(tmp_path))
    assert time.monotonic() - started < 20
    assert backbone.spec == "efficientnet-lite0" and backbone.dim == 1280
    assert backbone.encode_text(["a cat"]) is None
    assert any("test: offline" in record.getMessage() for record in caplog.records)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected

"""The backbone cut for fine-tuning: trunk then tail is the whole network, and the tail is a copy."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from embeddings import BatchingEncoder, build_efficientnet_lite0
from embeddings.precision import probe_batch
from embeddings.tuning import (
    EFFICIENTNET_LITE0_BLOCKS,
    NotTunable,
    SharedTrunk,
    TunedServing,
    split_efficientnet,
    split_tower,
    trunk_activations,
)
from learner.finetune import TunedHead, TunedModel


@pytest.mark.parametrize("tuned_blocks", [1, 3, 5])
def test_trunk_then_tail_gives_the_whole_networks_features(tuned_blocks: int) -> None:
    model = build_efficientnet_lite0()
    tower = split_efficientnet(model, tuned_blocks, "efficientnet-lite0")
    images = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model(images)
        got = tower.tail.eval()(tower.trunk(images))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_tuning_the_tail_leaves_the_backbone_untouched() -> None:
    model = build_efficientnet_lite0()
    before = {name: t.clone() for name, t in model.state_dict().items()}
    tower = split_efficientnet(model, 2, "efficientnet-lite0")
    assert all(p.requires_grad for p in tower.tail.parameters())
    assert not any(p.requires_grad for p in tower.trunk.parameters())
    with torch.no_grad():
        for parameter in tower.tail.parameters():
            parameter.add_(1.0)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, before[name], msg=name)


def test_activations_are_half_precision_and_in_batch_order() -> None:
    tower = split_tower("efficientnet-lite0", 1)
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    together = trunk_activations(tower.trunk, [images])
    apart = trunk_activations(tower.trunk, [images[:1], images[1:]])
    assert together.dtype == torch.float16 and together.shape[0] == 3
    torch.testing.assert_close(together, apart)
    with pytest.raises(ValueError, match="no images"):
        trunk_activations(tower.trunk, [])


def test_what_cannot_be_cut_says_so() -> None:
    with pytest.raises(NotTunable, match="not for 'clip:ViT-B-32/openai'"):
        split_tower("clip:ViT-B-32/openai", 2)
    assert split_tower("efficientnet-lite0", EFFICIENTNET_LITE0_BLOCKS).trunk is not None
    with pytest.raises(NotTunable, match=f"between 1 and {EFFICIENTNET_LITE0_BLOCKS}"):
        split_tower("efficientnet-lite0", EFFICIENTNET_LITE0_BLOCKS + 1)
    with pytest.raises(NotTunable, match="between 1 and 16"):
        split_tower("efficientnet-lite0", 0)


class MeanTail:
    """A stand-in for a tuned function's tail: each channel's mean activation, unit length."""

    def __init__(self, tuned_blocks: int = 3) -> None:
        self.tuned_blocks = tuned_blocks
        self.tail = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()

    def run(self, activations: torch.Tensor) -> np.ndarray:
        return torch.nn.functional.normalize(self.tail(activations), dim=1).numpy()


@pytest.fixture(scope="module")
def efficientnet() -> Any:
    from embeddings import load_backbone
    from embeddings.tower_options import TowerOptions

    return load_backbone("efficientnet-lite0", device="cpu", tower=TowerOptions("fp32"))


def images(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)) for _ in range(count)
    ]


def test_shared_trunk_activations_are_the_backbones_up_to_the_cut(efficientnet: Any) -> None:
    batch = torch.stack([efficientnet.preprocess(image) for image in images(3)])
    trunk = SharedTrunk("efficientnet-lite0", 3, batch[:1])

    activations = trunk.activations(batch)

    assert activations.shape == (3, 192, 7, 7)
    tail = split_tower("efficientnet-lite0", 3).tail.eval()
    with torch.inference_mode():
        vectors = torch.nn.functional.normalize(tail(activations), dim=1).numpy()
    np.testing.assert_allclose(vectors, efficientnet.encode(batch), atol=1e-4)


def test_encoder_runs_a_tuned_tail_on_the_trunk_beside_plain_requests(
    efficientnet: Any,
) -> None:
    tail = MeanTail()
    with BatchingEncoder(efficientnet, max_batch=4, max_wait_ms=20.0) as encoder:
        pictures = images(6, seed=1)
        results: dict[str, Any] = {}
        threads = [
            threading.Thread(target=lambda: results.setdefault("plain", encoder.encode(pictures))),
            threading.Thread(
                target=lambda: results.setdefault("tuned", encoder.encode_tuned(pictures, tail))
            ),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        tuned = results["tuned"]
        batch = torch.stack([efficientnet.preprocess(image) for image in pictures])
        activations = SharedTrunk("efficientnet-lite0", 3, batch).activations(batch)

    np.testing.assert_allclose(results["plain"], efficientnet.encode(batch), atol=1e-4)
    assert tuned.shape == (6, 192)  # in image order across the 4 + 2 slices
    np.testing.assert_allclose(tuned, tail.run(activations), atol=1e-4)


def test_a_backbone_that_cannot_be_cut_fails_only_the_tuned_request() -> None:
    from embeddings import load_backbone

    backbone = load_backbone("tiny-clip", device="cpu")
    with BatchingEncoder(backbone, max_batch=4) as encoder:
        with pytest.raises(NotTunable, match="efficientnet-lite0"):
            encoder.encode_tuned(images(2), MeanTail())
        assert encoder.encode(images(2)).shape == (2, backbone.dim)


def tuned_model(tuned_blocks: int = 3) -> Any:

    tail = split_tower("efficientnet-lite0", tuned_blocks).tail
    return TunedModel(tail, ["a", "b"], 1280, tuned_blocks).requires_grad_(False).eval()


@pytest.mark.parametrize(
    ("served", "label"), [(("torch", "bf16"), "bf16"), (("onnx", "int8"), "onnx-int8")]
)
def test_a_tuned_tail_serves_in_the_backbones_precision_when_it_keeps_the_vectors(
    efficientnet: Any, served: tuple[str, str], label: str
) -> None:
    probe = probe_batch(efficientnet.preprocess, 4, torch.device("cpu"))
    serving = TunedServing("efficientnet-lite0", probe, served)
    model = tuned_model()

    tail = serving.tail(model)

    assert (tail.label, tail.tuned_blocks) == (label, 3)
    assert tail.min_cosine >= 0.99
    assert serving.tail(model) is tail  # compiled once per tail
    retrained = TunedHead("efficientnet-lite0", model, classifier=object())
    assert serving.tail(retrained) is tail  # a head retrained on its features: the same tail
    batch = torch.stack([efficientnet.preprocess(image) for image in images(4, seed=3)])
    exact = model.run(SharedTrunk("efficientnet-lite0", 3, batch).activations(batch))
    rows = tail.run(serving.trunk(3).activations(batch))
    assert rows.dtype == np.float32 and rows.shape == (4, 1280)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(rows * exact, axis=1))) > 0.98


def test_a_tuned_tail_that_loses_the_vectors_in_int8_serves_in_fp32(
    efficientnet: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("embeddings.tuning.MIN_COSINE", {"cpu": 0.999999})
    probe = probe_batch(efficientnet.preprocess, 4, torch.device("cpu"))
    serving = TunedServing("efficientnet-lite0", probe, ("onnx", "int8"))

    tail = serving.tail(tuned_model())

    assert tail.label == "onnx-fp32"
    assert "serving onnx-fp32" in caplog.text


def test_the_encoder_serves_a_tuned_function_in_its_backbones_precision(efficientnet: Any) -> None:
    from embeddings import load_backbone
    from embeddings.tower_options import TowerOptions

    bf16 = load_backbone("efficientnet-lite0", device="cpu", tower=TowerOptions("bf16"))
    model = tuned_model()
    pictures = images(3, seed=4)
    with BatchingEncoder(bf16, max_batch=4) as encoder:
        rows = encoder.encode_tuned(pictures, model)
        again = encoder.encode_tuned(pictures, model)

    batch = torch.stack([efficientnet.preprocess(image) for image in pictures])
    exact = model.run(SharedTrunk("efficientnet-lite0", 3, batch).activations(batch))
    np.testing.assert_array_equal(rows, again)
    assert not np.allclose(rows, exact, atol=1e-5)  # bf16 arithmetic, not fp32's
    assert float(np.min(np.sum(rows * exact, axis=1))) > 0.98

"""The CLIP image tower runs as a frozen graph when tracing reproduces eager mode, else eagerly."""

from __future__ import annotations

import logging

import pytest
import torch
from PIL import Image

from embeddings.clip_backbone import ClipBackbone


def test_tiny_clip_serves_a_frozen_graph_with_eager_features(tiny_backbone: ClipBackbone) -> None:
    assert isinstance(tiny_backbone._image_tower, torch.jit.ScriptModule)
    generator = torch.Generator().manual_seed(0)
    for size in (1, 3, 8):
        batch = torch.randn(size, 3, 32, 32, generator=generator)
        with torch.inference_mode():
            eager = torch.nn.functional.normalize(tiny_backbone.model.encode_image(batch), dim=-1)
        torch.testing.assert_close(
            torch.from_numpy(tiny_backbone.encode(batch)), eager, rtol=1e-4, atol=1e-5
        )


class _BatchSizeDependent(torch.nn.Module):
    """Python branches on the batch size: tracing on one image records the wrong one for more."""

    def encode_image(self, batch: torch.Tensor) -> torch.Tensor:
        scale = 2.0 if batch.shape[0] > 1 else 1.0
        return batch.flatten(1) * scale + 1.0


class _Untraceable(torch.nn.Module):
    """Works eagerly; refuses to be traced (as models with unsupported operations do)."""

    def encode_image(self, batch: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            raise RuntimeError("unsupported operation")
        return batch.flatten(1) + 1.0


def _wrap(model: torch.nn.Module) -> ClipBackbone:
    def transform(image: Image.Image) -> torch.Tensor:
        return torch.zeros(3, 2, 2)

    return ClipBackbone(
        spec="clip:fake/none",
        model=model,
        transform=transform,
        tokenizer=lambda prompts: torch.zeros(len(prompts), 4, dtype=torch.long),
        device=torch.device("cpu"),
    )


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the point of the model
def test_a_tower_that_traces_wrongly_runs_eagerly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="embeddings.clip_backbone"):
        backbone = _wrap(_BatchSizeDependent())
    assert "differs from eager mode" in caplog.text
    batch = torch.rand(3, 3, 2, 2)
    expected = torch.nn.functional.normalize(batch.flatten(1) * 2.0 + 1.0, dim=-1)
    torch.testing.assert_close(torch.from_numpy(backbone.encode(batch)), expected)


def test_a_tower_that_cannot_be_traced_runs_eagerly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="embeddings.clip_backbone"):
        backbone = _wrap(_Untraceable())
    assert "cannot be traced (unsupported operation)" in caplog.text
    batch = torch.rand(2, 3, 2, 2)
    expected = torch.nn.functional.normalize(batch.flatten(1) + 1.0, dim=-1)
    torch.testing.assert_close(torch.from_numpy(backbone.encode(batch)), expected)

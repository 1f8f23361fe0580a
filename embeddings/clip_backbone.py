"""open_clip models as backbones: the :class:`ClipBackbone` wrapper and the tiny test model.

``tiny-clip`` is a real open_clip architecture (config shipped in ``configs/tiny-clip.json``:
32-d embeddings, 32x32 images cut into 8x8 patches, two 64-wide transformer layers per tower,
a 16-token context and the standard 49408-token vocabulary so the stock tokenizer works) with
seeded random weights. It exercises the genuine create_model / encode_image / encode_text path in
well under a second, so tests never need downloaded weights.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from embeddings.backbone import empty_vectors, normalised_rows

TINY_CLIP_SPEC = "tiny-clip"
TINY_CLIP_SEED = 0
_TINY_CLIP_CONFIG = Path(__file__).parent / "configs" / "tiny-clip.json"
_registration_lock = threading.Lock()


class ClipBackbone:
    """An open_clip model with its validation transform and tokenizer, used frozen in eval mode."""

    def __init__(
        self,
        *,
        spec: str,
        model: torch.nn.Module,
        transform: Callable[[Image.Image], torch.Tensor],
        tokenizer: Callable[[list[str]], torch.Tensor],
        device: torch.device,
    ) -> None:
        """Wrap an already created model.

        Args:
            spec: canonical spec string this backbone answers to.
            model: an open_clip model (``encode_image`` / ``encode_text``), already on ``device``.
            transform: open_clip's validation preprocessing for one PIL image.
            tokenizer: open_clip tokenizer for the model's text tower.
            device: the device ``model`` lives on.
        """
        self._spec = spec
        self._model = model.eval().requires_grad_(False)
        self._transform = transform
        self._tokenizer = tokenizer
        self._device = device
        self._dim = 0  # measured below by encoding one blank image
        probe = self.preprocess(Image.new("RGB", (8, 8)))
        self._dim = int(self.encode(probe.unsqueeze(0)).shape[1])

    @property
    def spec(self) -> str:
        """Canonical spec string, e.g. ``clip:ViT-B-32/laion2b_s34b_b79k``."""
        return self._spec

    @property
    def dim(self) -> int:
        """Embedding width of the CLIP joint space."""
        return self._dim

    @property
    def device(self) -> torch.device:
        """Device the model runs on."""
        return self._device

    @property
    def model(self) -> torch.nn.Module:
        """The underlying open_clip model (frozen, eval mode), e.g. to export a checkpoint."""
        return self._model

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Apply the model's own resize / crop / normalisation to one RGB image (CPU tensor)."""
        return self._transform(image)

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        """Encode ``(n, C, H, W)`` preprocessed images into ``(n, dim)`` unit-length rows."""
        if batch.shape[0] == 0:
            return empty_vectors(self._dim)
        with torch.inference_mode():
            features = self._model.encode_image(batch.to(self._device))  # type: ignore[operator]
        return normalised_rows(features)

    def encode_text(self, prompts: list[str]) -> np.ndarray | None:
        """Encode text prompts into the same space as images (for zero-shot classification).

        Args:
            prompts: free-text prompts such as ``"a photo of a cat"``.
        """
        if not prompts:
            return empty_vectors(self._dim)
        tokens = self._tokenizer(list(prompts)).to(self._device)
        with torch.inference_mode():
            features = self._model.encode_text(tokens)  # type: ignore[operator]
        return normalised_rows(features)


def build_clip_backbone(
    spec: str, model_name: str, *, device: torch.device, **create_kwargs: Any
) -> ClipBackbone:
    """Create an open_clip model and wrap it; open_clip errors propagate unchanged.

    Args:
        spec: canonical spec string for the result.
        model_name: open_clip model name (built-in name, ``hf-hub:...`` or ``local-dir:...``).
        device: where to run the model.
        create_kwargs: passed to ``open_clip.create_model_and_transforms`` (``pretrained``,
            ``cache_dir``, preprocessing overrides ...).
    """
    model, _, transform = open_clip.create_model_and_transforms(
        model_name, device=device, **create_kwargs
    )
    tokenizer = open_clip.get_tokenizer(model_name, cache_dir=create_kwargs.get("cache_dir"))
    return ClipBackbone(
        spec=spec, model=model, transform=transform, tokenizer=tokenizer, device=device
    )


def load_tiny_clip(device: torch.device) -> ClipBackbone:
    """Build the seeded, randomly initialised ``tiny-clip`` test backbone (identical every call).

    Args:
        device: where to run the model.
    """
    _register_tiny_clip_config()
    with torch.random.fork_rng(devices=[]):  # seed locally, leave the caller's RNG untouched
        torch.manual_seed(TINY_CLIP_SEED)
        return build_clip_backbone(TINY_CLIP_SPEC, TINY_CLIP_SPEC, device=device)


def _register_tiny_clip_config() -> None:
    """Add the shipped JSON config to open_clip's model registry once per process."""
    with _registration_lock:
        if TINY_CLIP_SPEC not in open_clip.list_models():
            open_clip.add_model_config(_TINY_CLIP_CONFIG)

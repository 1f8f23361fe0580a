"""The :class:`Backbone` contract every image encoder in winnow satisfies, plus shared helpers.

A backbone turns RGB images into L2-normalised float32 vectors. ``spec`` names it canonically, so
vectors are only ever compared with vectors from the same spec (a function pins its backbone).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image


@runtime_checkable
class Backbone(Protocol):
    """A frozen image encoder: preprocess one image, encode a batch, optionally encode text."""

    @property
    def spec(self) -> str:
        """Canonical spec string, e.g. ``"clip:ViT-B-32/laion2b_s34b_b79k"``."""
        ...

    @property
    def dim(self) -> int:
        """Length of the vectors :meth:`encode` returns."""
        ...

    @property
    def device(self) -> torch.device:
        """Where the model runs; :meth:`encode` moves batches there itself."""
        ...

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Turn one RGB image into a ``(C, H, W)`` float tensor on the CPU (safe in any thread)."""
        ...

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        """Encode a ``(n, C, H, W)`` batch into ``(n, dim)`` float32 L2-normalised rows."""
        ...

    def encode_text(self, prompts: list[str]) -> np.ndarray | None:
        """Encode prompts into the image space (``(n, dim)``, unit rows); None if unsupported."""
        ...


def resolve_device(device: str | None) -> torch.device:
    """Pick the device a backbone runs on: the one asked for, else CUDA when available, else CPU.

    Args:
        device: a torch device string such as ``"cpu"`` or ``"cuda:1"``, or None for automatic.
    """
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def normalised_rows(features: torch.Tensor) -> np.ndarray:
    """Return ``features`` as a float32 numpy array whose rows have unit L2 norm.

    Args:
        features: a ``(n, dim)`` tensor on any device.
    """
    unit = torch.nn.functional.normalize(features.float(), p=2.0, dim=-1)
    return np.ascontiguousarray(unit.cpu().numpy(), dtype=np.float32)


def empty_vectors(dim: int) -> np.ndarray:
    """A ``(0, dim)`` float32 array, the answer for an empty batch.

    Args:
        dim: vector length of the backbone.
    """
    return np.zeros((0, dim), dtype=np.float32)

"""The :class:`Backbone` contract every image encoder in winnow satisfies, plus shared helpers.

A backbone turns RGB images into L2-normalised float32 vectors. ``spec`` names it canonically, so
vectors are only ever compared with vectors from the same spec (a function pins its backbone).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as transforms_v1
from torchvision.transforms import v2 as transforms_v2


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


@runtime_checkable
class StagedPreprocessing(Protocol):
    """A backbone whose ``preprocess`` is a pixel stage followed by a tensor stage.

    The pixel stage (resize, crop: the costly part) needs no model, so it can run in another
    process than the model, which then receives small uint8 images instead of float tensors
    (:mod:`embeddings.ray_pool` does so for a Ray Serve encoder).
    ``tensor_stage(np.asarray(pixel_stage(image)))`` equals ``preprocess(image)`` exactly.
    """

    @property
    def pixel_stage(self) -> Callable[[Image.Image], Image.Image] | None:
        """The resize / crop part of ``preprocess`` as a picklable callable; None if it has none."""
        ...

    def tensor_stage(self, pixels: np.ndarray) -> torch.Tensor:
        """The rest of ``preprocess`` for ``(H, W, 3)`` uint8 pixels made by :attr:`pixel_stage`."""
        ...


def split_at_tensor_conversion(transform: Any) -> tuple[Any, Any] | None:
    """Cut a torchvision ``Compose`` where images become tensors: ``(pixel part, tensor part)``.

    The conversions cut at (``ToTensor`` and subclasses, v2 ``ToImage``) accept a numpy
    ``(H, W, C)`` uint8 array as well as a PIL image and give the same tensor for both, so the
    tensor part may run on the pixel part's output sent elsewhere as an array.

    Args:
        transform: a v1 or v2 ``Compose``; anything else, or one without such a conversion (or
            with nothing before it), gives None.
    """
    if not isinstance(transform, (transforms_v1.Compose, transforms_v2.Compose)):
        return None
    steps = list(transform.transforms)
    for index, step in enumerate(steps):
        if isinstance(step, (transforms_v1.ToTensor, transforms_v2.ToImage)):
            if index == 0:
                return None
            compose = type(transform)
            return compose(steps[:index]), compose(steps[index:])
    return None


def resolve_device(device: str | None) -> torch.device:
    """Pick the device a backbone runs on: the one asked for, else CUDA when available, else CPU.

    Args:
        device: a torch device string such as ``"cpu"`` or ``"cuda:1"``, or None for automatic.
    """
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``batch`` on ``device``; to a GPU through pinned (page-locked) host memory, copied without
    blocking the host (later work on the device's stream waits for the copy by itself).

    Args:
        batch: a CPU tensor (pinned already or not).
        device: the model's device.
    """
    if device.type != "cuda":
        return batch.to(device)
    if not batch.is_pinned():
        batch = batch.pin_memory()
    return batch.to(device, non_blocking=True)


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


def frozen_graph(module: torch.nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """``module`` traced on ``example`` and frozen: the same outputs, served better.

    Eager PyTorch releases the GIL inside each operator and must win it back for the next one.
    In the service, request threads decode, preprocess and answer in Python meanwhile, so the
    encoder thread queues for the GIL between operators (up to the 5 ms switch interval each
    time). The traced graph runs all its operators in C++ without the GIL, and freezing folds
    constants (BatchNorm into convolutions, for example). B2 (``python -m bench.serving``) shows
    the effect.

    Tracing records one path through ``module``: shapes and branches that depend on the input
    are fixed to ``example``'s, except the batch size, which stays free in the backbones here.

    A module with 16-bit float weights is frozen without the numerics-changing passes: folding
    BatchNorm into 16-bit convolution weights lowered EfficientNet-Lite0's per-image cosine to
    fp32 from 0.997 to 0.976 (folded in fp32 first, 0.989).

    Args:
        module: an eval-mode model taking one ``(n, C, H, W)`` batch.
        example: a batch of the shape the backbone's preprocessing makes, on the model's device.
    """
    with warnings.catch_warnings(), torch.no_grad():
        # torch 2.14 marks torch.jit deprecated in favour of torch.compile / torch.export, whose
        # CPU output still runs under the GIL (export) or needs a compiler at start-up (compile)
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
        low_precision = any(
            param.dtype in (torch.bfloat16, torch.float16) for param in module.parameters()
        )
        # no check_trace: it reruns the model thrice (most of the time spent here), and callers
        # compare the graph with eager mode on other batch sizes themselves, or in tests
        traced = torch.jit.trace(module, example, check_trace=False)
        return torch.jit.freeze(traced, optimize_numerics=not low_precision)

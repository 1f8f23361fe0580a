"""open_clip models as backbones: the :class:`ClipBackbone` wrapper and the tiny test model.

``tiny-clip`` is a real open_clip architecture (config shipped in ``configs/tiny-clip.json``:
32-d embeddings, 32x32 images cut into 8x8 patches, two 64-wide transformer layers per tower,
a 16-token context and the standard 49408-token vocabulary so the stock tokenizer works) with
seeded random weights. It exercises the genuine create_model / encode_image / encode_text path in
well under a second, so tests never need downloaded weights.

The image tower is served as a frozen TorchScript graph (:func:`embeddings.backbone.frozen_graph`)
when tracing reproduces eager mode on a probe batch; other architectures run eagerly. Its numeric
precision is chosen by :func:`embeddings.precision.build_tower`.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from embeddings.backbone import (
    empty_vectors,
    frozen_graph,
    normalised_rows,
    split_at_tensor_conversion,
    to_device,
)
from embeddings.onnx_graph import PixelRecipe, recipe_from_transform
from embeddings.precision import PrecisionChoice, build_tower, compiling, probe_batch
from embeddings.tower_options import DEFAULT_TOWER, TowerOptions

TINY_CLIP_SPEC = "tiny-clip"
TINY_CLIP_SEED = 0
_TINY_CLIP_CONFIG = Path(__file__).parent / "configs" / "tiny-clip.json"
_registration_lock = threading.Lock()
_TRACE_TOLERANCE = 1e-4  # largest difference from eager mode a traced tower may show
logger = logging.getLogger(__name__)


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
        tower: TowerOptions = DEFAULT_TOWER,
    ) -> None:
        """Wrap an already created model.

        Args:
            spec: canonical spec string this backbone answers to.
            model: an open_clip model (``encode_image`` / ``encode_text``), already on ``device``.
            transform: open_clip's validation preprocessing for one PIL image.
            tokenizer: open_clip tokenizer for the model's text tower.
            device: the device ``model`` lives on.
            tower: precision and compilation of the image tower (:mod:`embeddings.precision`).
        """
        self._spec = spec
        self._model = model.eval().requires_grad_(False)
        self._transform = transform
        self._stages = split_at_tensor_conversion(transform)
        self._tokenizer = tokenizer
        self._device = device
        probe = probe_batch(self.preprocess, tower.probe_batch, device)
        finalise = partial(_traced_image_tower, spec)
        self._image_tower, self._precision = build_tower(
            _ImageTower(self._model).eval(),
            probe,
            finalise=compiling(finalise, name=spec) if tower.compile else finalise,
            precision=tower.precision,
            runtime=tower.runtime,
            memory=tower.precision_memory,
            name=spec,
        )
        self._dim = int(self.encode(probe[:1]).shape[1])

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
    def has_text_tower(self) -> bool:
        """True: CLIP embeds text into the image space (:meth:`encode_text`)."""
        return True

    @property
    def precision(self) -> PrecisionChoice:
        """The precision the image tower runs in, and the measurements behind an ``auto`` one."""
        return self._precision

    @property
    def model(self) -> torch.nn.Module:
        """The underlying open_clip model (frozen, eval mode), e.g. to export a checkpoint."""
        return self._model

    def export_tower(self) -> tuple[torch.nn.Module, PixelRecipe]:
        """An fp32 copy of the image tower on the CPU and its pixel recipe (for ONNX export,
        :func:`embeddings.onnx_graph.pixel_graph`).

        Raises:
            ValueError: the model's preprocessing is not of the resize / crop / normalise form.
        """
        recipe = recipe_from_transform(self._transform)
        visual = self._model.visual
        if not isinstance(visual, torch.nn.Module):
            raise ValueError(f"{self._spec}: the model has no image tower module to export")
        return _VisualTower(copy.deepcopy(visual).float().cpu()).eval(), recipe

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Apply the model's own resize / crop / normalisation to one RGB image (CPU tensor)."""
        return self._transform(image)

    @property
    def pixel_stage(self) -> Callable[[Image.Image], Image.Image] | None:
        """open_clip's resize / crop steps (before the tensor conversion), None if its transform
        does not split there (see :class:`embeddings.backbone.StagedPreprocessing`)."""
        return self._stages[0] if self._stages is not None else None

    def tensor_stage(self, pixels: np.ndarray) -> torch.Tensor:
        """open_clip's tensor conversion and normalisation of ``(H, W, 3)`` uint8 pixels.

        Args:
            pixels: the output of :attr:`pixel_stage` as a numpy array.

        Raises:
            ValueError: this model's transform has no pixel stage.
        """
        if self._stages is None:
            raise ValueError(f"{self._spec}: preprocessing has no separate pixel stage")
        tensor: torch.Tensor = self._stages[1](pixels)
        return tensor

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        """Encode ``(n, C, H, W)`` preprocessed images into ``(n, dim)`` unit-length rows."""
        if batch.shape[0] == 0:
            return empty_vectors(self._dim)
        with torch.inference_mode():
            features = self._image_tower(to_device(batch, self._device))
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


class _ImageTower(torch.nn.Module):
    """``model.encode_image`` as a module's ``forward``, the form tracing takes."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(batch)  # type: ignore[operator,no-any-return]


class _VisualTower(torch.nn.Module):
    """open_clip's ``encode_image`` without the text tower: ``visual(batch)`` (unnormalised)."""

    def __init__(self, visual: torch.nn.Module) -> None:
        super().__init__()
        self.visual = visual

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.visual(batch)  # type: ignore[no-any-return]


def _traced_image_tower(
    spec: str, tower: torch.nn.Module, probe: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The frozen graph of an image ``tower`` (in any precision), or the eager tower.

    open_clip serves many architectures; tracing records one path through each, so the graph is
    traced on one image and used only if it gives eager mode's features on a batch of another
    size (``probe`` and its mirror image). Otherwise, or if tracing fails, the tower runs eagerly
    and a warning says so. Towers computing in 16-bit floats get a proportionally looser bound.
    """
    check = torch.cat([probe, probe.flip(-1) + 0.5])
    low_precision = any(p.dtype in (torch.bfloat16, torch.float16) for p in tower.parameters())
    tolerance = _TRACE_TOLERANCE * (100 if low_precision else 1)
    try:
        graph = frozen_graph(tower, probe[:1])
        with torch.inference_mode():
            expected = tower(check)
            gap = float((graph(check) - expected).abs().max()) / max(
                1.0, float(expected.abs().max())
            )
    except Exception as error:  # any tracing failure means: serve eagerly
        logger.warning("%s: image tower cannot be traced (%s); running it eagerly", spec, error)
        return tower
    if not gap <= tolerance:
        logger.warning(
            "%s: traced image tower differs from eager mode by %.2g; running it eagerly", spec, gap
        )
        return tower
    return graph


def build_clip_backbone(
    spec: str,
    model_name: str,
    *,
    device: torch.device,
    tower: TowerOptions = DEFAULT_TOWER,
    **create_kwargs: Any,
) -> ClipBackbone:
    """Create an open_clip model and wrap it; open_clip errors propagate unchanged.

    Args:
        spec: canonical spec string for the result.
        model_name: open_clip model name (built-in name, ``hf-hub:...`` or ``local-dir:...``).
        device: where to run the model.
        tower: precision and compilation of the image tower.
        create_kwargs: passed to ``open_clip.create_model_and_transforms`` (``pretrained``,
            ``cache_dir``, preprocessing overrides ...).
    """
    model, _, transform = open_clip.create_model_and_transforms(
        model_name, device=device, **create_kwargs
    )
    tokenizer = open_clip.get_tokenizer(model_name, cache_dir=create_kwargs.get("cache_dir"))
    return ClipBackbone(
        spec=spec,
        model=model,
        transform=transform,
        tokenizer=tokenizer,
        device=device,
        tower=tower,
    )


def load_tiny_clip(device: torch.device, tower: TowerOptions = DEFAULT_TOWER) -> ClipBackbone:
    """Build the seeded, randomly initialised ``tiny-clip`` test backbone (identical every call).

    Args:
        device: where to run the model.
        tower: precision and compilation of the image tower.
    """
    _register_tiny_clip_config()
    with torch.random.fork_rng(devices=[]):  # seed locally, leave the caller's RNG untouched
        torch.manual_seed(TINY_CLIP_SEED)
        return build_clip_backbone(TINY_CLIP_SPEC, TINY_CLIP_SPEC, device=device, tower=tower)


def _register_tiny_clip_config() -> None:
    """Add the shipped JSON config to open_clip's model registry once per process."""
    with _registration_lock:
        if TINY_CLIP_SPEC not in open_clip.list_models():
            open_clip.add_model_config(_TINY_CLIP_CONFIG)

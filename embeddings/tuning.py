"""A convolutional backbone cut in two for fine-tuning: a frozen trunk and a tail to tune.

A fine-tuned challenger (:mod:`learner.finetune`) tunes only the last ``tuned_blocks`` blocks of
the network and a new head. Everything before them, the trunk, stays frozen and shared: it runs
once per input (for training, once per stored image and augmented view, its activations kept),
and a tuned function adds only its own tail to that. The tail here is a fresh copy with gradients
on, so tuning never touches the weights that serve the frozen vectors.

EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0``) has 16 blocks in 7 stages; the last one
(192 to 320 channels) and the four before it (192 channels) run at 7x7 on a 224 px image, so for
``tuned_blocks`` <= 4 the trunk's output is ``(192, 7, 7)`` per image. What a tail costs to train
and serve is measured by ``python -m bench.finetune``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from timm.models.efficientnet import EfficientNet

from embeddings.backbone import frozen_graph, to_device
from embeddings.efficientnet_backbone import EFFICIENTNET_LITE0_SPEC, build_efficientnet_lite0

TUNABLE_SPECS = (EFFICIENTNET_LITE0_SPEC,)
"""Backbones a fine-tuned challenger can be made of (a ViT's blocks are not cut here)."""

EFFICIENTNET_LITE0_BLOCKS = 16
"""How many blocks EfficientNet-Lite0 has: the deepest cut."""


class NotTunable(ValueError):
    """The backbone cannot be cut for fine-tuning (a CLIP ViT), or the cut is out of range."""


@dataclass(frozen=True)
class SplitTower:
    """A backbone's frozen trunk and a tunable copy of its tail.

    Attributes:
        trunk: pixels ``(n, 3, 224, 224)`` to activations ``(n, C, H, W)``; eval mode, frozen.
        tail: activations to pooled features ``(n, dim)``; a copy with gradients on.
        tuned_blocks: how many of the network's last blocks the tail holds (its head
            convolution too).
        spec: the backbone's spec.
    """

    trunk: torch.nn.Module
    tail: torch.nn.Module
    tuned_blocks: int
    spec: str


def split_tower(spec: str, tuned_blocks: int) -> SplitTower:
    """``spec``'s network cut before its last ``tuned_blocks`` blocks.

    Raises:
        NotTunable: ``spec`` is not in :data:`TUNABLE_SPECS`, or ``tuned_blocks`` is not between
            1 and the network's block count.
    """
    if spec not in TUNABLE_SPECS:
        raise NotTunable(
            f"fine-tuning is available for {', '.join(TUNABLE_SPECS)}; not for {spec!r}"
        )
    model = build_efficientnet_lite0(with_classifier=False)
    assert isinstance(model, EfficientNet)
    return split_efficientnet(model, tuned_blocks, spec)


def split_efficientnet(model: EfficientNet, tuned_blocks: int, spec: str) -> SplitTower:
    """Cut a timm EfficientNet (``conv_stem``, ``bn1``, ``blocks`` of stages, ``conv_head``,
    ``bn2``, ``global_pool``) before its last ``tuned_blocks`` blocks."""
    blocks = [block for stage in model.blocks.children() for block in stage.children()]
    if not 1 <= tuned_blocks <= len(blocks):
        raise NotTunable(f"tuned_blocks must be between 1 and {len(blocks)}, got {tuned_blocks}")
    cut = len(blocks) - tuned_blocks
    trunk = torch.nn.Sequential(model.conv_stem, model.bn1, *blocks[:cut]).eval()
    trunk.requires_grad_(False)
    tail = torch.nn.Sequential(
        *copy.deepcopy(blocks[cut:]),
        copy.deepcopy(model.conv_head),
        copy.deepcopy(model.bn2),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    )
    tail.requires_grad_(True)
    return SplitTower(trunk=trunk, tail=tail, tuned_blocks=tuned_blocks, spec=spec)


def tuned_network(spec: str, tail: torch.nn.Module, tuned_blocks: int) -> torch.nn.Module:
    """A tuned version's whole image tower on the CPU in fp32: ``spec``'s frozen trunk cut
    before its last ``tuned_blocks`` blocks, then a copy of ``tail``, the tuned rest (scaled
    pixels in, pooled features out; for ONNX export).

    Raises:
        NotTunable: as :func:`split_tower`.
    """
    trunk = split_tower(spec, tuned_blocks).trunk
    return torch.nn.Sequential(trunk, copy.deepcopy(tail).float().cpu()).eval()


def trunk_activations(trunk: torch.nn.Module, batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """The trunk's activations for each preprocessed batch, concatenated, in float16 (half the
    memory; training casts them back to float32).

    Args:
        trunk: a :class:`SplitTower`'s trunk.
        batches: ``(n, 3, H, W)`` preprocessed images, on the trunk's device.
    """
    with torch.inference_mode():
        parts = [trunk(batch).to(torch.float16) for batch in batches]
    if not parts:
        raise ValueError("no images to run through the trunk")
    return torch.cat(parts).clone()  # a normal tensor: autograd may read it later


class TunedTail(Protocol):
    """A function's own tail, run by the encoder on the shared trunk's activations."""

    @property
    def tuned_blocks(self) -> int:
        """Where the network is cut: the trunk stops before its last ``tuned_blocks`` blocks."""
        ...

    def run(self, activations: torch.Tensor) -> np.ndarray:
        """``(n, k)`` float rows for ``(n, C, H, W)`` trunk activations (on the trunk's device)."""
        ...


class SharedTrunk:
    """The frozen network up to a cut, as a frozen graph: a batch runs through it once and every
    tuned tail cut there reads its activations, so a tuned function costs its trunk and its own
    tail, never the frozen tail as well (nor a second pass of the network).

    The graph is fp32 (:func:`embeddings.backbone.frozen_graph`), whatever precision the
    backbone's own tower runs in (see :mod:`embeddings.precision`).

    Args:
        spec: a spec in :data:`TUNABLE_SPECS`.
        tuned_blocks: where to cut.
        device: where the graph runs.
        example: a preprocessed batch ``(n, 3, H, W)`` of the size the backbone makes.

    Raises:
        NotTunable: as :func:`split_tower`.
    """

    def __init__(
        self, spec: str, tuned_blocks: int, device: torch.device, example: torch.Tensor
    ) -> None:
        trunk = split_tower(spec, tuned_blocks).trunk.to(device)
        self.tuned_blocks = tuned_blocks
        self.device = device
        self._trunk = frozen_graph(trunk, example.to(device))

    def activations(self, batch: torch.Tensor) -> torch.Tensor:
        """The trunk's fp32 activations ``(n, C, H, W)`` of ``batch``, on :attr:`device`."""
        with torch.inference_mode():
            activations: torch.Tensor = self._trunk(to_device(batch, self.device))
            return activations

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

import torch
from timm.models.efficientnet import EfficientNet

from embeddings.efficientnet_backbone import EFFICIENTNET_LITE0_SPEC, build_efficientnet_lite0

TUNABLE_SPECS = (EFFICIENTNET_LITE0_SPEC,)
"""Backbones a fine-tuned challenger can be made of (a ViT's blocks are not cut here)."""


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

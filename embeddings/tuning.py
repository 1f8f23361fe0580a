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
import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from timm.models.efficientnet import EfficientNet

from embeddings.backbone import Backbone, frozen_graph, normalised_rows, to_device
from embeddings.efficientnet_backbone import EFFICIENTNET_LITE0_SPEC, build_efficientnet_lite0
from embeddings.onnx_runtime import FP32_CONVOLUTIONS
from embeddings.precision import MIN_COSINE, PrecisionChoice, build_candidate, probe_batch
from embeddings.tower_options import served_label

logger = logging.getLogger(__name__)

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

    @property
    def tail(self) -> torch.nn.Module:
        """The tuned tail: fp32 activations ``(n, C, H, W)`` to pooled features ``(n, dim)``,
        eval mode (what the encoder compiles, see :class:`TunedServing`)."""
        ...

    def run(self, activations: torch.Tensor) -> np.ndarray:
        """``(n, k)`` unit float32 rows for ``(n, C, H, W)`` trunk activations, in fp32: the
        reference a served tail is checked against."""
        ...


def served_as(backbone: Backbone) -> tuple[str, str]:
    """``(runtime, precision)`` the backbone's tower serves in (its
    :class:`embeddings.precision.PrecisionChoice`); fp32 for one that reports none (a test's)."""
    choice = getattr(backbone, "precision", None)
    if isinstance(choice, PrecisionChoice):
        return choice.runtime, choice.precision
    return "torch", "fp32"


class SharedTrunk:
    """The frozen network up to a cut, in the runtime and precision the backbone's tower serves
    in: a batch runs through it once and every tuned tail cut there reads its activations, so a
    tuned function costs its trunk and its own tail, never the frozen tail as well (nor a
    second pass of the network).

    Args:
        spec: a spec in :data:`TUNABLE_SPECS`.
        tuned_blocks: where to cut.
        probe: a preprocessed batch ``(n, 3, H, W)`` of the size the backbone makes, on the
            device the trunk runs on (the trace's example, int8's calibration).
        served: ``(runtime, precision)`` of the backbone's tower (its
            :class:`embeddings.precision.PrecisionChoice`).

    Raises:
        NotTunable: as :func:`split_tower`.
        ValueError: ``served`` cannot be built here.
    """

    def __init__(
        self,
        spec: str,
        tuned_blocks: int,
        probe: torch.Tensor,
        served: tuple[str, str] = ("torch", "fp32"),
    ) -> None:
        trunk = split_tower(spec, tuned_blocks).trunk.to(probe.device)
        self.tuned_blocks = tuned_blocks
        self.device = probe.device
        self.convolutions = sum(isinstance(m, torch.nn.Conv2d) for m in trunk.modules())
        self._trunk = build_candidate(trunk, probe, *served, finalise=frozen_graph)

    def activations(self, batch: torch.Tensor) -> torch.Tensor:
        """The trunk's fp32 activations ``(n, C, H, W)`` of ``batch``, on :attr:`device` (every
        runtime and precision answers in fp32)."""
        with torch.inference_mode():
            activations: torch.Tensor = self._trunk(to_device(batch, self.device))
            return activations


@dataclass(frozen=True)
class ServedTail:
    """A tuned tail compiled for serving (:meth:`TunedServing.tail`).

    Attributes:
        tuned_blocks: where its network is cut.
        label: what runs it, e.g. ``onnx-int8`` (:func:`embeddings.tower_options.served_label`).
        min_cosine: the lowest cosine of its rows to the fp32 tail's on the probe batch.
        tower: the compiled tail: activations to pooled features.
    """

    tuned_blocks: int
    label: str
    min_cosine: float
    tower: Callable[[torch.Tensor], torch.Tensor]

    def run(self, activations: torch.Tensor) -> np.ndarray:
        """Unit float32 rows of trunk activations (as :meth:`TunedTail.run`'s, within
        :attr:`min_cosine` on the probe)."""
        with torch.inference_mode():
            return normalised_rows(self.tower(activations))


class TunedServing:
    """One backbone's shared trunks and its tuned functions' tails, compiled to run as its tower
    does: in the runtime and precision it serves in (``--precision auto`` may have chosen bf16
    or ONNX Runtime's int8, which on an AMX Xeon ran EfficientNet-Lite0 at 1.7x and 3.8x
    torch's fp32), built at first use and kept.

    A tail in a lower precision than fp32 serves only if each probe image's row keeps a cosine
    of at least :data:`embeddings.precision.MIN_COSINE` to the fp32 tail's on the same
    activations, as the backbone's tower did; otherwise (or if it cannot be built) the tail
    serves in its runtime's fp32. Trunk and tails are built in the calling thread, so a first
    invoke of a tuned function compiles its tail without holding the encoder's other requests.

    Args:
        spec: the backbone's spec.
        probe: preprocessed probe images on the backbone's device
            (:func:`embeddings.precision.probe_batch`).
        served: ``(runtime, precision)`` of the backbone's tower.
    """

    def __init__(
        self, spec: str, probe: torch.Tensor, served: tuple[str, str] = ("torch", "fp32")
    ) -> None:
        self.spec = spec
        self.served = served
        self.probe = probe
        self._trunks: dict[int, SharedTrunk] = {}
        # keyed by the tail's module: heads retrained on a tail's features share its module
        self._tails: weakref.WeakKeyDictionary[torch.nn.Module, ServedTail] = (
            weakref.WeakKeyDictionary()
        )
        self._trunk_lock = threading.Lock()  # a lookup never waits on it, only a build
        self._tail_lock = threading.Lock()

    @classmethod
    def for_backbone(cls, backbone: Backbone) -> TunedServing:
        """Serving as ``backbone``'s tower does (:func:`served_as`), checked on its probe
        images (:func:`embeddings.precision.probe_batch`), as the encoder serves tuned tails."""
        probe = probe_batch(backbone.preprocess, 8, backbone.device)
        return cls(backbone.spec, probe, served_as(backbone))

    def trunk(self, tuned_blocks: int) -> SharedTrunk:
        """The trunk cut before the last ``tuned_blocks`` blocks.

        Raises:
            NotTunable: the backbone cannot be cut there.
        """
        trunk = self._trunks.get(tuned_blocks)
        if trunk is None:
            with self._trunk_lock:
                trunk = self._trunks.get(tuned_blocks)
                if trunk is None:
                    trunk = SharedTrunk(self.spec, tuned_blocks, self.probe, self.served)
                    self._trunks[tuned_blocks] = trunk
        return trunk

    def tail(self, tail: TunedTail) -> ServedTail:
        """``tail`` compiled to serve (the same one for the same tail module while it lives).

        Raises:
            NotTunable: the backbone cannot be cut at ``tail``'s block.
        """
        trunk = self.trunk(tail.tuned_blocks)
        with self._tail_lock:
            served = self._tails.get(tail.tail)
            if served is None:
                served = self._compile(tail, trunk)
                self._tails[tail.tail] = served
            return served

    def _compile(self, tail: TunedTail, trunk: SharedTrunk) -> ServedTail:
        activations = trunk.activations(self.probe)
        reference = torch.from_numpy(tail.run(activations))
        runtime, precision = self.served
        options = (
            [(runtime, precision)] if precision == "fp32" else [self.served, (runtime, "fp32")]
        )
        threshold = MIN_COSINE.get(self.probe.device.type, MIN_COSINE["cpu"])
        module = copy.deepcopy(tail.tail).float().to(activations.device).eval()
        for option in options:
            try:
                tower = build_candidate(
                    module,
                    activations,
                    *option,
                    finalise=frozen_graph,
                    fp32_convolutions=max(0, FP32_CONVOLUTIONS - trunk.convolutions),
                )
                rows = torch.from_numpy(normalised_rows(tower(activations)))
            except Exception as error:  # a kernel this machine lacks: the next option serves
                if option == options[-1]:
                    raise
                logger.warning("tuned tail in %s unavailable (%s)", served_label(*option), error)
                continue
            cosine = float(torch.nn.functional.cosine_similarity(rows, reference).min())
            if cosine >= threshold or option == options[-1]:
                label = served_label(*option)
                logger.info(
                    "tuned tail (%d blocks) runs in %s (probe cosine to fp32 %.4f)",
                    tail.tuned_blocks,
                    label,
                    cosine,
                )
                return ServedTail(tail.tuned_blocks, label, cosine, tower)
            logger.warning(
                "tuned tail in %s keeps a cosine of %.4f to fp32 (< %s): serving %s",
                served_label(*option),
                cosine,
                threshold,
                served_label(*options[-1]),
            )
        raise AssertionError("unreachable: the last option returns or raises")

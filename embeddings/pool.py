"""``EncoderPool``: one lazily loaded in-process :class:`BatchingEncoder` per backbone spec."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from embeddings.backbone import resolve_device
from embeddings.backbones import load_backbone
from embeddings.encoder import BatchingEncoder
from embeddings.precision import candidates
from embeddings.spec_pool import SpecPool
from embeddings.tower_options import (
    TowerOptions,
    auto_batch_size,
    validate_precision,
    validate_runtime,
)

# Forward passes an encoder on a CPU runs at once by default, each on its own batch with the
# cores shared out: on 2 cores with 16 clients, B2 measured 95-105 images/s with two
# single-threaded passes against 64-76 with one pass whose threads were tuned (1 or 2).
CPU_WORKERS = 2


def default_workers(device: torch.device) -> int:
    """Forward passes an encoder on ``device`` runs at once unless told: :data:`CPU_WORKERS` on
    a CPU, one on an accelerator."""
    return CPU_WORKERS if device.type == "cpu" else 1


class EncoderPool(SpecPool[BatchingEncoder]):
    """Backbone spec -> running batching encoder, with a default spec for new functions."""

    def __init__(
        self,
        default_spec: str,
        *,
        device: str | None = None,
        cache_dir: str | None = None,
        max_batch: int | None = 16,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        torch_threads: int | None = -1,
        on_batch: Callable[[str, int, float], None] | None = None,
        precision: str = "fp32",
        compile: bool = False,
        precision_memory: Path | None = None,
        workers: int = 0,
        runtime: str = "torch",
    ) -> None:
        """Remember the settings; nothing is loaded until first needed.

        Args:
            default_spec: spec for functions created without one (``auto`` allowed).
            device: torch device string for every backbone, or None for automatic.
            cache_dir: CLIP weight cache directory (None: the Hugging Face default).
            max_batch: see :class:`BatchingEncoder`; None picks it for the device
                (:func:`embeddings.precision.auto_batch_size`).
            max_wait_ms: see :class:`BatchingEncoder`.
            max_queue: see :class:`BatchingEncoder`.
            torch_threads: see :class:`BatchingEncoder`.
            on_batch: called after each forward pass with ``(backbone spec, images, seconds)``;
                see :class:`BatchingEncoder`.
            precision: image tower precision, one of :data:`embeddings.precision.PRECISIONS`
                (``auto`` measures the candidates when each backbone loads).
            compile: serve the image towers through ``torch.compile``.
            precision_memory: JSON file where ``auto`` remembers its choice per machine and
                backbone (see :mod:`embeddings.precision_memory`); None measures at each load.
            workers: see :class:`BatchingEncoder`; 0: :data:`CPU_WORKERS` on a CPU, 1 on an
                accelerator (whose kernels one stream runs in turn anyway).
            runtime: what runs the image towers: ``torch``, ``onnx`` (ONNX Runtime) or ``auto``
                (measured with the precisions, see :func:`embeddings.precision.build_tower`).

        Raises:
            ValueError: ``default_spec`` is not a valid spec, ``precision`` not a precision,
                ``runtime`` not a runtime, or the two ask for what cannot run on the device
                (ONNX Runtime in bf16, or on CUDA without its provider).
        """
        super().__init__(default_spec)
        self._precision = validate_precision(precision)
        self._runtime = validate_runtime(runtime)
        candidates(self._runtime, self._precision, resolve_device(device))  # fail at start
        self._compile = compile
        self._precision_memory = precision_memory
        self._device = device
        self._cache_dir = cache_dir
        self._max_batch = max_batch
        self._max_wait_ms = max_wait_ms
        self._max_queue = max_queue
        self._torch_threads = torch_threads
        self._on_batch = on_batch
        self._workers = workers

    def _open(self, spec: str) -> BatchingEncoder:
        max_batch = self._max_batch or auto_batch_size(resolve_device(self._device))
        tower = TowerOptions(
            self._precision,
            self._compile,
            probe_batch=max_batch,
            precision_memory=self._precision_memory,
            runtime=self._runtime,
        )
        backbone = load_backbone(spec, device=self._device, cache_dir=self._cache_dir, tower=tower)
        return BatchingEncoder(
            backbone,
            max_batch=max_batch,
            max_wait_ms=self._max_wait_ms,
            max_queue=self._max_queue,
            torch_threads=self._torch_threads,
            on_batch=self._batch_observer(backbone.spec),
            workers=self._workers or default_workers(backbone.device),
        )

    def _spec_of(self, encoder: BatchingEncoder) -> str:
        return encoder.backbone.spec

    def _batch_observer(self, spec: str) -> Callable[[int, float], None] | None:
        """The pool's observer with ``spec`` bound, so one observer tells the backbones apart."""
        on_batch = self._on_batch
        if on_batch is None:
            return None
        return lambda images, seconds: on_batch(spec, images, seconds)

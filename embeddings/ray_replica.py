"""``EncoderReplica``: one backbone served as a Ray Serve deployment that batches across callers.

It runs on the Ray cluster (GPU nodes in production), one application per backbone spec, named by
:func:`app_name` so every API replica finds the same one. Callers send one image per call as uint8
pixels, already through the backbone's pixel stage (resize, crop: the CPU-heavy part, done on the
API replicas' cores; see :class:`embeddings.backbone.StagedPreprocessing`); ``@serve.batch``
gathers the calls of all API replicas into one forward pass. Ray Serve adds the rest: replicas
autoscale on the number of ongoing requests, and each caller's handle refuses requests beyond
``max_queued_requests`` (:mod:`embeddings.ray_pool` turns that into EncoderOverloaded).

Operators may deploy the application themselves (for example ``serve deploy`` with a config whose
``import_path`` is ``embeddings.ray_replica:encoder_app`` and whose ``args`` are ``{"spec": ...}``,
under the name :func:`app_name` gives); API replicas then use it as it is.

This module imports Ray: only the ``ray`` encoder imports it.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image
from ray import serve
from ray.serve import Application

from embeddings.backbone import StagedPreprocessing
from embeddings.backbones import load_backbone
from embeddings.text import backbone_has_text_tower, encode_text_or_raise
from embeddings.tuning import SharedTrunk

APP_PREFIX = "winnow-encoder-"
_APP_NAME_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")
_MAX_SLUG = 40
T = TypeVar("T")


def app_name(spec: str) -> str:
    """The Ray Serve application name that serves ``spec`` (readable, unique per spec).

    Args:
        spec: a canonical backbone spec.
    """
    slug = _APP_NAME_SLUG.sub("-", spec).strip("-")[:_MAX_SLUG]
    digest = hashlib.sha1(spec.encode()).hexdigest()[:8]  # specs that slug alike stay apart
    return f"{APP_PREFIX}{slug}-{digest}"


@serve.deployment(
    # defaults for `serve run embeddings.ray_replica:encoder_app`; ray_pool passes its own
    max_ongoing_requests=32,
    max_queued_requests=256,
    user_config={"max_batch_size": 16, "batch_wait_timeout_s": 0.005},
)
class EncoderReplica:
    """A loaded backbone whose ``__call__`` encodes one image, batched with concurrent calls."""

    def __init__(
        self,
        spec: str,
        *,
        device: str | None = None,
        cache_dir: str | None = None,
        torch_threads: int = 0,
        min_batch_seconds: float = 0.0,
    ) -> None:
        """Load the backbone (failures make the deployment fail, with the reason).

        Args:
            spec: backbone spec (``auto`` resolves on this replica's node).
            device: torch device, or None for the GPU Ray assigned (else the CPU).
            cache_dir: CLIP weight cache directory on the replica's node.
            torch_threads: torch threads for the forward pass; 0 keeps Ray's (the actor's CPUs).
            min_batch_seconds: pad every forward pass to at least this long; emulates a slower
                model or device in tests and benchmarks (0 in service).
        """
        self._backbone = load_backbone(spec, device=device, cache_dir=cache_dir)
        self._pixel_stage = None
        self._tensor_stage = None
        if isinstance(self._backbone, StagedPreprocessing) and self._backbone.pixel_stage:
            self._pixel_stage = self._backbone.pixel_stage
            self._tensor_stage = self._backbone.tensor_stage
        self._min_batch_seconds = min_batch_seconds
        # One thread runs every forward pass, so the event loop keeps taking requests meanwhile
        # and torch's thread setting (per thread) is made once.
        self._model_thread = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="winnow-encoder",
            initializer=partial(torch.set_num_threads, torch_threads) if torch_threads else None,
        )
        self._lock = threading.Lock()
        self._trunks: dict[int, SharedTrunk] = {}  # tuned functions' cuts, built at first use
        self._batches = 0
        self._images = 0
        self._largest_batch = 0

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply the ``user_config``: batch size and wait, changeable without restarting."""
        batcher: Any = self.encode_batch  # serve.batch's wrapper; its type hint omits the setters
        batcher.set_max_batch_size(int(config["max_batch_size"]))
        batcher.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))
        trunk_batcher: Any = self.trunk_batch
        trunk_batcher.set_max_batch_size(int(config["max_batch_size"]))
        trunk_batcher.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))

    def describe(self) -> dict[str, Any]:
        """What callers need: the concrete ``spec``, vector ``dim`` and the ``pixel_stage`` to run
        before sending (None: send the whole RGB image)."""
        return {
            "spec": self._backbone.spec,
            "dim": self._backbone.dim,
            "pixel_stage": self._pixel_stage,
            "has_text_tower": backbone_has_text_tower(self._backbone),
        }

    async def encode_text(self, prompts: list[str]) -> np.ndarray:
        """Unit rows for text prompts (zero-shot heads; rare, so not batched across callers).

        Raises:
            TextNotSupported: the backbone has no text tower.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._model_thread, encode_text_or_raise, self._backbone, prompts
        )

    def stats(self) -> dict[str, int]:
        """Counters of this replica: ``batches``, ``images`` and ``largest_batch``."""
        with self._lock:
            return {
                "batches": self._batches,
                "images": self._images,
                "largest_batch": self._largest_batch,
            }

    async def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """One image's L2-normalised float32 vector.

        Args:
            pixels: ``(H, W, 3)`` uint8 pixels, after :meth:`describe`'s ``pixel_stage`` if any.
        """
        vector: np.ndarray = await self.encode_batch(pixels)
        return vector

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)  # reconfigure() sets both
    async def encode_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Encode the images of concurrent calls (from any caller) in one forward pass."""
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(self._model_thread, self._encode, images)
        return list(vectors)

    async def trunk(self, request: tuple[np.ndarray, int]) -> np.ndarray:
        """One image's activations of the frozen trunk cut for a tuned function
        (:class:`embeddings.tuning.SharedTrunk`), fp32: the caller runs its tail on them.

        Args:
            request: ``(pixels, tuned_blocks)``: the pixels as for :meth:`__call__`, and where
                the network is cut.

        Raises:
            NotTunable: the backbone cannot be cut there.
        """
        activations: np.ndarray = await self.trunk_batch(request)
        return activations

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)  # reconfigure() sets both
    async def trunk_batch(self, requests: list[tuple[np.ndarray, int]]) -> list[np.ndarray]:
        """Run the trunk once for the concurrent :meth:`trunk` calls cut at the same block."""
        loop = asyncio.get_running_loop()
        results: list[np.ndarray] = [None] * len(requests)  # type: ignore[list-item]
        for cut in sorted({blocks for _, blocks in requests}):
            chosen = [i for i, (_, blocks) in enumerate(requests) if blocks == cut]
            activations = await loop.run_in_executor(
                self._model_thread, self._run_trunk, cut, [requests[i][0] for i in chosen]
            )
            for row, i in enumerate(chosen):
                results[i] = activations[row]
        return results

    def _run_trunk(self, cut: int, images: list[np.ndarray]) -> np.ndarray:
        def run(batch: torch.Tensor) -> np.ndarray:
            trunk = self._trunks.get(cut)
            if trunk is None:
                trunk = SharedTrunk(self._backbone.spec, cut, batch[:1].to(self._backbone.device))
                self._trunks[cut] = trunk  # only the model thread reads and writes it
            activations: np.ndarray = trunk.activations(batch).cpu().numpy()
            return activations

        return self._timed(images, run)

    def _encode(self, images: list[np.ndarray]) -> np.ndarray:
        vectors: np.ndarray = self._timed(images, self._backbone.encode)
        return vectors

    def _timed(self, images: list[np.ndarray], run: Callable[[torch.Tensor], T]) -> T:
        """``run`` on the images' batch, counted (and padded to ``min_batch_seconds``)."""
        started = time.monotonic()
        result = run(torch.stack([self._tensor(pixels) for pixels in images]))
        time.sleep(max(0.0, self._min_batch_seconds - (time.monotonic() - started)))
        with self._lock:
            self._batches += 1
            self._images += len(images)
            self._largest_batch = max(self._largest_batch, len(images))
        return result

    def _tensor(self, pixels: np.ndarray) -> torch.Tensor:
        # arrays from Ray's object store are read-only; torch wants to own writable memory
        pixels = pixels if pixels.flags.writeable else pixels.copy()
        if self._tensor_stage is not None:
            return self._tensor_stage(pixels)
        return self._backbone.preprocess(Image.fromarray(pixels))


def encoder_app(args: dict[str, Any]) -> Application:
    """Application builder for Ray Serve configs (``embeddings.ray_replica:encoder_app``).

    Args:
        args: ``spec`` (required) and optionally ``device``, ``cache_dir``, ``torch_threads``;
            deployment options (replicas, autoscaling, GPUs) go in the config's ``deployments``.
    """
    keywords = {k: args[k] for k in ("device", "cache_dir", "torch_threads") if k in args}
    return EncoderReplica.bind(str(args["spec"]), **keywords)  # type: ignore[attr-defined]

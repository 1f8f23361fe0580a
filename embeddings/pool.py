"""``EncoderPool``: one lazily loaded :class:`BatchingEncoder` per backbone spec.

Functions pin their backbone, so a service may need several models at once; each is loaded on
first use (once, even under concurrent first requests) and then shared by every function that
pins the same spec.
"""

from __future__ import annotations

import threading
from types import TracebackType

from embeddings.backbones import AUTO_SPEC, canonical_backbone_spec, load_backbone
from embeddings.encoder import BatchingEncoder
from embeddings.errors import EncoderClosed


class EncoderPool:
    """Backbone spec -> running batching encoder, with a default spec for new functions."""

    def __init__(
        self,
        default_spec: str,
        *,
        device: str | None = None,
        cache_dir: str | None = None,
        max_batch: int = 16,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        torch_threads: int | None = -1,
    ) -> None:
        """Remember the settings; nothing is loaded until first needed.

        Args:
            default_spec: spec for functions created without one (``auto`` allowed).
            device: torch device string for every backbone, or None for automatic.
            cache_dir: CLIP weight cache directory (None: the Hugging Face default).
            max_batch: see :class:`BatchingEncoder`.
            max_wait_ms: see :class:`BatchingEncoder`.
            max_queue: see :class:`BatchingEncoder`.
            torch_threads: see :class:`BatchingEncoder`.

        Raises:
            ValueError: ``default_spec`` is not a valid spec.
        """
        self._requested_default = canonical_backbone_spec(default_spec)
        self._device = device
        self._cache_dir = cache_dir
        self._max_batch = max_batch
        self._max_wait_ms = max_wait_ms
        self._max_queue = max_queue
        self._torch_threads = torch_threads
        self._encoders: dict[str, BatchingEncoder] = {}
        self._resolved_default: str | None = None
        self._load_lock = threading.Lock()  # serialises slow model loads; lookups skip it
        self._closed = False

    @property
    def default_spec(self) -> str:
        """The concrete spec of the default backbone (loads it, so ``auto`` is resolved)."""
        return self.get("").backbone.spec

    def resolve(self, spec: str | None) -> str:
        """Canonical spec a new function should pin: the default for None/``auto``.

        Args:
            spec: requested spec or None.

        Raises:
            ValueError: ``spec`` is not a valid spec.
        """
        if spec is None or spec.strip() in ("", AUTO_SPEC):
            return self.default_spec
        return canonical_backbone_spec(spec)

    def get(self, spec: str) -> BatchingEncoder:
        """The encoder for ``spec``, loading its backbone on first use.

        Args:
            spec: a backbone spec; empty or ``auto`` means the default.

        Raises:
            ValueError: invalid spec.
            BackboneUnavailable: the backbone cannot be loaded (not cached as a failure).
            EncoderClosed: the pool is closed.
        """
        key = self._key(spec)
        encoder = self._encoders.get(key)
        if encoder is not None:
            return encoder
        with self._load_lock:
            if self._closed:
                raise EncoderClosed("the encoder pool is closed")
            key = self._key(spec)  # the default may have been resolved meanwhile
            encoder = self._encoders.get(key)
            if encoder is None:
                backbone = load_backbone(key, device=self._device, cache_dir=self._cache_dir)
                encoder = BatchingEncoder(
                    backbone,
                    max_batch=self._max_batch,
                    max_wait_ms=self._max_wait_ms,
                    max_queue=self._max_queue,
                    torch_threads=self._torch_threads,
                )
                self._encoders[backbone.spec] = encoder
                if key != backbone.spec:  # "auto" resolved to a concrete backbone
                    self._resolved_default = backbone.spec
            return encoder

    def loaded(self) -> list[str]:
        """Specs whose backbones are loaded, sorted."""
        return sorted(self._encoders)

    def close(self) -> None:
        """Close every encoder; later :meth:`get` calls raise EncoderClosed."""
        with self._load_lock:
            self._closed = True
            encoders = list(self._encoders.values())
        for encoder in encoders:
            encoder.close()

    def __enter__(self) -> EncoderPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _key(self, spec: str) -> str:
        spec = spec.strip()
        if spec in ("", AUTO_SPEC):
            if self._requested_default != AUTO_SPEC:
                return self._requested_default
            return self._resolved_default or AUTO_SPEC
        return canonical_backbone_spec(spec)

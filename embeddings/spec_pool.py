"""``SpecPool``: backbone spec -> encoder, opened once on first use, with a default spec.

Functions pin their backbone, so a service may need several encoders at once; each is opened on
first use (once, even under concurrent first requests) and shared by every function that pins the
same spec. :class:`embeddings.pool.EncoderPool` opens in-process encoders,
:class:`embeddings.ray_pool.RayEncoderPool` Ray Serve applications.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

from embeddings.backbones import AUTO_SPEC, canonical_backbone_spec
from embeddings.errors import EncoderClosed


class Closable(Protocol):
    def close(self) -> None: ...


E = TypeVar("E", bound=Closable)


class SpecPool(Generic[E]):
    """The lookup, locking and ``auto`` resolution both pools share; subclasses open encoders.

    Args:
        default_spec: spec for functions created without one (``auto`` allowed).

    Raises:
        ValueError: ``default_spec`` is not a valid spec.
    """

    def __init__(self, default_spec: str) -> None:
        self._requested_default = canonical_backbone_spec(default_spec)
        self._encoders: dict[str, E] = {}
        self._resolved_default: str | None = None
        self._load_lock = threading.Lock()  # serialises slow opens; lookups skip it
        self._closed = False

    def _open(self, spec: str) -> E:
        """Load or deploy the encoder of ``spec`` (canonical, or ``auto``)."""
        raise NotImplementedError

    def _spec_of(self, encoder: E) -> str:
        """The concrete spec ``encoder`` runs (what ``auto`` resolved to)."""
        raise NotImplementedError

    def _usable(self, encoder: E) -> bool:
        """False for an encoder to open again (a lost deployment)."""
        return True

    @property
    def default_spec(self) -> str:
        """The concrete spec of the default backbone (opens it, so ``auto`` is resolved)."""
        return self._spec_of(self.get(""))

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

    def get(self, spec: str) -> E:
        """The encoder for ``spec``, opened on first use (and again when no longer usable).

        Args:
            spec: a backbone spec; empty or ``auto`` means the default.

        Raises:
            ValueError: invalid spec.
            BackboneUnavailable: the backbone cannot be opened (not cached as a failure).
            EncoderClosed: the pool is closed.
        """
        encoder = self._encoders.get(self._key(spec))
        if encoder is not None and self._usable(encoder):
            return encoder
        with self._load_lock:
            if self._closed:
                raise EncoderClosed("the encoder pool is closed")
            key = self._key(spec)  # the default may have been resolved meanwhile
            encoder = self._encoders.get(key)
            if encoder is None or not self._usable(encoder):
                encoder = self._open(key)
                opened = self._spec_of(encoder)
                self._encoders[opened] = encoder
                if key != opened:  # "auto" resolved to a concrete backbone
                    self._resolved_default = opened
            return encoder

    def loaded(self) -> list[str]:
        """Specs whose encoders are open, sorted."""
        return sorted(self._encoders)

    def close(self) -> None:
        """Close every encoder; later :meth:`get` calls raise EncoderClosed."""
        with self._load_lock:
            self._closed = True
            encoders = list(self._encoders.values())
        for encoder in encoders:
            encoder.close()

    def __enter__(self) -> Self:
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

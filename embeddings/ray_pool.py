"""``RayEncoderPool``: the encoder pool's interface over Ray Serve encoder deployments.

Many CPU-only API replicas share a pool of (GPU) encoder replicas: each backbone spec is one Ray
Serve application (:mod:`embeddings.ray_replica`), deployed by the first API replica that needs
it (through :mod:`embeddings.ray_deployer`) and found by name by the others, then called through
a :class:`embeddings.ray_encoder.RayEncoder`. Same spec, same vectors, same errors as the
in-process :class:`embeddings.pool.EncoderPool`.

This module imports Ray: only the ``ray`` encoder imports it.
"""

from __future__ import annotations

import ray
from ray import serve
from ray.exceptions import RayTaskError
from ray.serve.exceptions import RayServeException

from embeddings.errors import BackboneUnavailable
from embeddings.ray_deployer import NAMESPACE, EncoderOptions, deployer
from embeddings.ray_encoder import UNAVAILABLE, RayEncoder, off_event_loop
from embeddings.ray_replica import app_name
from embeddings.spec_pool import SpecPool


class RayEncoderPool(SpecPool[RayEncoder]):
    """Backbone spec -> Ray Serve encoder application, with a default spec for new functions.

    ``close`` stops this process using the applications; they and Ray keep running, since other
    API replicas share them (a local Ray this process started stops when the process exits).
    """

    def __init__(
        self,
        default_spec: str,
        *,
        address: str = "",
        cache_dir: str | None = None,
        max_batch: int = 16,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        torch_threads: int = 0,
    ) -> None:
        """Remember the settings; Ray is joined (or started) on first need.

        Args:
            default_spec: spec for functions created without one (``auto`` allowed).
            address: Ray cluster address (``host:port`` of its head, or ``auto``); empty: the
                Ray of this node (``RAY_ADDRESS``, or one ``ray start`` began) if there is one,
                else a local Ray started by this process.
            cache_dir: CLIP weight cache directory on the encoder replicas' nodes.
            max_batch: most images per forward pass on a replica.
            max_wait_ms: how long a replica waits to fill a batch.
            max_queue: requests this process queues per backbone before EncoderOverloaded.
            torch_threads: torch threads of a replica's forward pass (0: Ray's default).

        Raises:
            ValueError: ``default_spec`` is not a valid spec, or a size is out of range.
        """
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        super().__init__(default_spec)
        self._address = address
        self._options = EncoderOptions(
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            torch_threads=max(0, torch_threads),
            cache_dir=cache_dir,
        )

    def _open(self, spec: str) -> RayEncoder:
        return off_event_loop(lambda: self._connect_to(spec))

    def _spec_of(self, encoder: RayEncoder) -> str:
        return encoder.spec

    def _usable(self, encoder: RayEncoder) -> bool:
        return not encoder.lost  # deleted or failed since: deploy again

    def _connect_to(self, spec: str) -> RayEncoder:
        """Deploy (or find) ``spec``'s application and ask a replica what to send it."""
        try:
            self._join_ray()
            status, detail = ray.get(deployer().ensure.remote(spec, self._options))
            if status == "invalid":
                raise ValueError(detail)
            if status != "ok":
                raise BackboneUnavailable(detail)
            handle = serve.get_app_handle(app_name(detail))
            description = handle.describe.remote().result()
        except (RayTaskError, RayServeException, *UNAVAILABLE) as error:
            raise BackboneUnavailable(f"Ray encoder for {spec}: {error}") from error
        return RayEncoder(
            handle,
            spec=description["spec"],
            dim=int(description["dim"]),
            pixel_stage=description["pixel_stage"],
            has_text_tower=bool(description.get("has_text_tower", False)),
            max_batch=self._options.max_batch,
            max_queue=self._options.max_queue,
        )

    def _join_ray(self) -> None:
        """Connect this process to Ray once (see ``address``)."""
        if ray.is_initialized():  # another pool of this process (or the host program) did
            return
        if self._address:
            ray.init(address=self._address, namespace=NAMESPACE)
        else:  # a Ray started here serves only this node: no dashboard processes
            ray.init(namespace=NAMESPACE, include_dashboard=False)

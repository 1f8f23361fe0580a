"""``AppDeployer``: the one actor per Ray cluster that deploys encoder applications.

``serve.run`` gives an application a new code version on every call, so two API replicas
deploying the same backbone at once would restart its replicas under each other. Every API
replica therefore asks this named, detached actor instead; an actor runs one call at a time, so
the second caller finds the application already running. It also resolves ``auto`` the way
:func:`embeddings.backbones.load_backbone` does: the default CLIP model if its replica starts,
else the offline backbone.

This module imports Ray: only the ``ray`` encoder imports it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve
from ray.serve.schema import ApplicationStatus

from embeddings.backbones import (
    AUTO_SPEC,
    DEFAULT_CLIP_SPEC,
    canonical_backbone_spec,
)
from embeddings.efficientnet_backbone import EFFICIENTNET_LITE0_SPEC
from embeddings.ray_replica import EncoderReplica, app_name

logger = logging.getLogger(__name__)

DEPLOYER_NAME = "winnow-encoder-deployer"
NAMESPACE = "winnow"
_POLL_S = 0.2


@dataclass(frozen=True)
class EncoderOptions:
    """How a new encoder application is deployed (an existing one is used as it is)."""

    max_batch: int  # most images per forward pass (``@serve.batch`` max_batch_size)
    max_wait_ms: float  # how long a replica waits to fill a batch
    max_queue: int  # requests each caller's handle queues before refusing (max_queued_requests)
    torch_threads: int = 0  # torch threads of a replica's forward pass (0: Ray's, its CPUs)
    cache_dir: str | None = None  # CLIP weight cache on the replicas' nodes
    deploy_timeout_s: float = 600.0  # longest wait for an application someone else deploys

    def deployment_options(self, gpus: int) -> dict[str, Any]:
        """Ray Serve deployment options for a cluster with ``gpus`` GPUs.

        With GPUs each replica takes one and the deployment autoscales between one replica and
        one per GPU; without, it runs one CPU replica.

        Args:
            gpus: GPUs in the cluster now (``ray.cluster_resources()``).
        """
        return {
            # one batch in the model while the next one fills
            "max_ongoing_requests": 2 * self.max_batch,
            "max_queued_requests": self.max_queue,
            "autoscaling_config": {
                "min_replicas": 1,
                "initial_replicas": 1,
                "max_replicas": max(1, gpus),
                "target_ongoing_requests": self.max_batch,
            },
            "ray_actor_options": {"num_cpus": 1, "num_gpus": 1 if gpus else 0},
            "user_config": {
                "max_batch_size": self.max_batch,
                "batch_wait_timeout_s": self.max_wait_ms / 1000.0,
            },
            # a backbone that cannot load fails the same way every time: report it soon
            "max_constructor_retry_count": 1,
        }


@ray.remote(num_cpus=0, max_restarts=-1)
class AppDeployer:
    """Deploys the encoder application of a spec unless it runs; one call at a time."""

    def __init__(self) -> None:
        serve.start(proxy_location="Disabled")  # callers use handles, no HTTP ingress needed
        self._auto: str | None = None

    def ensure(self, spec: str, options: EncoderOptions) -> tuple[str, str]:
        """Make the application serving ``spec`` run; ``("ok", concrete spec)``, or
        ``("invalid" | "unavailable", reason)``.

        Args:
            spec: a backbone spec; ``auto`` deploys the default CLIP model, or the offline
                backbone if that fails.
            options: deployment settings for an application not yet running.
        """
        try:
            spec = canonical_backbone_spec(spec)
        except ValueError as error:
            return "invalid", str(error)
        if spec != AUTO_SPEC:
            failure = self._ensure_app(spec, options)
            return ("unavailable", failure) if failure else ("ok", spec)
        if self._auto is not None and not self._ensure_app(self._auto, options):
            return "ok", self._auto
        failure = self._ensure_app(DEFAULT_CLIP_SPEC, options)
        if failure is None:
            self._auto = DEFAULT_CLIP_SPEC
            return "ok", DEFAULT_CLIP_SPEC
        logger.warning(
            "backbone 'auto': %s is unavailable (%s); falling back to %s",
            DEFAULT_CLIP_SPEC,
            failure,
            EFFICIENTNET_LITE0_SPEC,
        )
        failure = self._ensure_app(EFFICIENTNET_LITE0_SPEC, options)
        if failure is not None:
            return "unavailable", failure
        self._auto = EFFICIENTNET_LITE0_SPEC
        return "ok", EFFICIENTNET_LITE0_SPEC

    def _ensure_app(self, spec: str, options: EncoderOptions) -> str | None:
        """Deploy ``spec``'s application unless it runs; None once it runs, else the reason."""
        name = app_name(spec)
        deadline = time.monotonic() + options.deploy_timeout_s
        while True:
            status = serve.status().applications.get(name)
            state = status.status if status is not None else None
            if state == ApplicationStatus.RUNNING:
                return None
            if state not in (ApplicationStatus.DEPLOYING, ApplicationStatus.DELETING):
                break  # absent, failed or unhealthy: (re)deploy it
            if time.monotonic() > deadline:  # deployed by someone else, taking too long
                return f"application {name} still {state} after {options.deploy_timeout_s} s"
            time.sleep(_POLL_S)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        deployment = EncoderReplica.options(  # type: ignore[attr-defined]
            **options.deployment_options(gpus)
        )
        app = deployment.bind(
            spec, cache_dir=options.cache_dir, torch_threads=options.torch_threads
        )
        try:
            serve.run(app, name=name, route_prefix=None)
        except RuntimeError as error:  # the replica failed to start: the backbone's error
            reason = _failure_reason(name, error)
            serve.delete(name, _blocking=False)  # leave no failing replicas restarting
            return f"encoder deployment {name} failed: {reason}"
        return None


def _failure_reason(name: str, error: RuntimeError) -> str:
    """The last line of the failed replica's traceback (the backbone's own error), if Serve has
    one; ``serve.run``'s error only says that the deployment failed."""
    status = serve.status().applications.get(name)
    messages = [d.message for d in status.deployments.values() if d.message] if status else []
    lines = [line.strip() for line in "\n".join(messages).splitlines() if line.strip()]
    return lines[-1] if lines else str(error)


def deployer() -> Any:
    """The cluster's :class:`AppDeployer`, started on first use (needs ``ray.init`` first)."""
    return AppDeployer.options(  # type: ignore[attr-defined]
        name=DEPLOYER_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote()

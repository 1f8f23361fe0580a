"""The composition root's object graph: every long-lived component, built from Settings."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from pathlib import Path

import numpy as np
from sqlmodel import select

from api.settings import Settings
from capture import CaptureController, CapturePolicy, IndexRegistry
from embeddings import EncoderPool
from learner import DeployedHeads, ModelStore
from store import BlobStore, Function, ReviewItem, Sample, make_engine, session_scope

log = logging.getLogger("winnow")


class CaptureState:
    """Per-function capture controllers and training label counts, created on first use."""

    def __init__(self, seed: int | None) -> None:
        self._seed = seed
        self._controllers: dict[str, CaptureController] = {}
        self._label_counts: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        # Decide + index update is serialised per function so two concurrent invokes of the same
        # image cannot both pass duplicate suppression.
        self.function_locks: dict[str, threading.Lock] = {}

    def controller(self, function: Function) -> CaptureController:
        with self._lock:
            controller = self._controllers.get(function.id)
            if controller is None:
                rng = np.random.default_rng(self._seed)
                policy = CapturePolicy.from_dict(function.capture_policy or {})
                controller = CaptureController(policy, rng=rng)
                self._controllers[function.id] = controller
                self.function_locks[function.id] = threading.Lock()
            return controller

    def update_policy(self, function: Function, policy: CapturePolicy) -> None:
        """Apply a changed policy, keeping the controller's recent scores and budget usage."""
        self.controller(function).update_policy(policy)

    def set_label_counts(self, function_id: str, counts: dict[str, int]) -> None:
        with self._lock:
            self._label_counts[function_id] = dict(counts)

    def label_counts(self, function_id: str) -> dict[str, int]:
        with self._lock:
            return self._label_counts.get(function_id, {})

    def drop(self, function_id: str) -> None:
        with self._lock:
            self._controllers.pop(function_id, None)
            self._label_counts.pop(function_id, None)


class Runtime:
    """Holds the engine, blob store, encoders, deployed heads and indexes of one service.

    Tests build a fresh one per temp directory; nothing here is a module-level singleton.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        data_dir = Path(settings.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(settings.database)
        self.blobs = BlobStore(data_dir / "blobs")
        self.models = ModelStore(data_dir / "models")
        self.heads = DeployedHeads()
        self.encoders = EncoderPool(
            settings.backbone,
            cache_dir=settings.weights_cache_dir or None,
            max_batch=settings.batch_size,
            max_wait_ms=settings.batch_wait_ms,
            max_queue=settings.queue_limit,
        )
        self.indexes = IndexRegistry()
        self.capture = CaptureState(int(settings.seed) if settings.seed else None)
        # One training at a time per function; a trigger during training is coalesced.
        self.training_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def start(self) -> None:
        """Recover state after a (possibly unclean) stop, then load the default backbone."""
        self.sweep_orphans()
        self.load_deployed_heads()
        log.info("default backbone: %s", self.encoders.default_spec)

    def sweep_orphans(self) -> None:
        """Remove blobs and artifact temp files left behind by a crash between write steps."""
        with session_scope(self.engine) as session:
            referenced = set(session.exec(select(Sample.blob)).all())
            referenced |= set(session.exec(select(ReviewItem.blob)).all())
        removed = self.blobs.sweep(referenced)
        removed += self.models.sweep_temp_files()
        if removed:
            log.warning("startup sweep removed %d orphan file(s)", removed)

    def load_deployed_heads(self) -> None:
        """Serve every function's deployed version again and rebuild its capture index."""
        from api.services.capture import rebuild_index
        from api.services.training import load_deployed

        with session_scope(self.engine) as session:
            functions = session.exec(select(Function)).all()
        for function in functions:
            load_deployed(self, function)
            rebuild_index(self, function.id)

    def close(self) -> None:
        self.encoders.close()
        self.engine.dispose()

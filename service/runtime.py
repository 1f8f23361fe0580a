"""The composition root's object graph: every long-lived component, built from Settings."""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np

from capture import CaptureController, CapturePolicy, IndexRegistry
from capture.drift import NoveltyTraffic
from capture.novelty_models import NoveltyModels
from embeddings import EncoderPool, ImageEncoderPool, PixelBudget
from embeddings.tower_options import CPU_BATCH_SIZE, parse_batch_size
from embeddings.tuning import EFFICIENTNET_LITE0_BLOCKS
from learner import DeployedHeads, ModelStore, ObjectModelStore
from learner.scheduler import Debounce, RetrainScheduler, TrainingTracker
from review_queue import capture_times
from service.auth import Authenticator
from service.auth_throttle import AuthThrottle, make_failure_counts
from service.combining import Combiner
from service.metrics import Metrics
from service.ratelimit import make_rate_limiter
from service.settings import Settings
from service.snapshots import Snapshots
from service.traffic_sample import TrafficSample
from store import (
    BlobStore,
    Function,
    S3BlobStore,
    S3Objects,
    make_engine,
    parse_s3_url,
    session_scope,
)

log = logging.getLogger("winnow")

# Age at which an unreferenced file in a data dir that replicas share is surely no write in flight.
SHARED_SWEEP_GRACE_S = 3600.0
# The automatic decode budget: decoded images may hold this share of the machine's memory (the
# rest is the backbone, heads, indexes, the database and everything else), and each pixel costs
# this many bytes while it is held: Pillow keeps RGB as 4 bytes per pixel, and decoding holds the
# file's frame and its upright copy at once (measured: 8.0 bytes per pixel of peak RSS for a
# 40-megapixel PNG). Rarer modes cost more in passing (16-bit greyscale is scaled via float64).
DECODE_MEMORY_SHARE = 0.25
DECODE_BYTES_PER_PIXEL = 8
# The automatic budget of the resident functions' serving state (heads, indexes, traffic windows).
SNAPSHOT_MEMORY_SHARE = 0.25
_CGROUP_MEMORY_LIMIT = Path("/sys/fs/cgroup/memory.max")
# In the data dir: --precision auto's choice per machine and backbone (delete to measure again).
PRECISION_MEMORY = "precision.json"


def open_storage(
    url: str, data_dir: Path
) -> tuple[BlobStore | S3BlobStore, ModelStore | ObjectModelStore]:
    """Image blobs and model artifacts: under ``file:///ROOT`` (default: the data dir) in
    ``ROOT/blobs`` and ``ROOT/models``, or in S3-compatible storage at ``s3://BUCKET[/PREFIX]``
    (checked now, so a wrong bucket fails the start with its name)."""
    if url.startswith("s3://"):
        bucket, prefix = parse_s3_url(url)
        objects = S3Objects(bucket, prefix)
        objects.check()
        return S3BlobStore(objects), ObjectModelStore(objects)
    if url and not url.startswith("file://"):
        raise ValueError(f"blob_store must be file:///PATH or s3://BUCKET[/PREFIX], not {url!r}")
    root = Path(urlparse(url).path) if url else data_dir
    return BlobStore(root / "blobs"), ModelStore(root / "models")


def private_dir(path: Path) -> Path:
    """Create the data dir ``0700``, or tighten an existing one that others could read (what an
    earlier winnow made): the database, images and models in it are the owner's alone."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        path.chmod(mode & 0o700)
        log.warning("data dir %s was mode %04o: tightened to %04o", path, mode, mode & 0o700)
    return path


def encoder_pool(
    settings: Settings, *, on_batch: Callable[[str, int, float], None]
) -> ImageEncoderPool:
    """The in-process encoder pool, or with ``encoder=ray`` the Ray Serve deployments every
    replica shares (Ray is imported only then); ``on_batch`` observes in-process forward passes."""
    if settings.encoder == "ray":
        from embeddings.ray_pool import RayEncoderPool

        return RayEncoderPool(
            settings.backbone,
            address=settings.ray_address,
            cache_dir=settings.weights_cache_dir or None,
            # Ray replicas may have GPUs the API node lacks: auto means the CPU's batch here
            max_batch=parse_batch_size(settings.batch_size) or CPU_BATCH_SIZE,
            max_wait_ms=settings.batch_wait_ms,
            max_queue=settings.queue_limit,
            torch_threads=settings.encoder_threads,
        )
    if settings.encoder != "local":
        raise ValueError(f"encoder must be local or ray, not {settings.encoder!r}")
    return EncoderPool(
        settings.backbone,
        cache_dir=settings.weights_cache_dir or None,
        max_batch=parse_batch_size(settings.batch_size),
        max_wait_ms=settings.batch_wait_ms,
        max_queue=settings.queue_limit,
        torch_threads=settings.encoder_threads or -1,
        on_batch=on_batch,
        precision=settings.precision,
        runtime=settings.runtime,
        compile=settings.compile,
        precision_memory=Path(settings.data_dir) / PRECISION_MEMORY,
        workers=settings.encoder_workers,
    )


def check_finetune(settings: Settings) -> None:
    """Refuse fine-tune settings that would fail only when a tune runs."""
    if settings.finetune not in ("off", "auto"):
        raise ValueError(f"finetune must be off or auto, not {settings.finetune!r}")
    if not 1 <= settings.finetune_blocks <= EFFICIENTNET_LITE0_BLOCKS:
        raise ValueError(
            f"finetune_blocks must be between 1 and {EFFICIENTNET_LITE0_BLOCKS} (the blocks of "
            f"EfficientNet-Lite0), not {settings.finetune_blocks}"
        )
    if not settings.finetune_max_minutes >= 0:
        raise ValueError(
            f"finetune_max_minutes must be >= 0 (0: no limit), not {settings.finetune_max_minutes}"
        )


def decode_pixel_budget(settings: Settings) -> int:
    """Pixels that decoded images may hold at once: ``settings.decode_pixel_budget``, or with 0
    ``DECODE_MEMORY_SHARE`` of :func:`machine_memory_bytes` at ``DECODE_BYTES_PER_PIXEL``, at
    least one image of ``max_image_pixels`` (so every accepted image can be decoded)."""
    chosen, largest = settings.decode_pixel_budget, settings.max_image_pixels
    if chosen == 0:
        memory = machine_memory_bytes()
        return max(largest, int(memory * DECODE_MEMORY_SHARE) // DECODE_BYTES_PER_PIXEL)
    if chosen < largest:
        raise ValueError(
            f"decode_pixel_budget ({chosen}) must be 0 (auto) or at least max_image_pixels "
            f"({largest}), so that the largest accepted image fits"
        )
    return chosen


def snapshot_budget_bytes(settings: Settings) -> int:
    """Memory the resident functions' serving state may hold: ``snapshot_memory_mb``, or with
    0 ``SNAPSHOT_MEMORY_SHARE`` of :func:`machine_memory_bytes`."""
    if settings.snapshot_memory_mb < 0:
        raise ValueError(
            f"snapshot_memory_mb must be 0 (auto) or positive, not {settings.snapshot_memory_mb}"
        )
    if settings.snapshot_memory_mb == 0:
        return int(machine_memory_bytes() * SNAPSHOT_MEMORY_SHARE)
    return int(settings.snapshot_memory_mb * 1024 * 1024)


def machine_memory_bytes() -> int:
    """Physical memory, or the cgroup (v2) memory limit of this container if that is lower."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = _CGROUP_MEMORY_LIMIT.read_text().strip()
    except OSError:  # no cgroup v2 (another OS, or cgroup v1)
        return memory
    return min(memory, int(limit)) if limit.isdigit() else memory  # "max": no limit


class Stoppable(Protocol):
    def stop(self, timeout: float = ...) -> None: ...


class RequestSet:
    """A thread-safe set of function ids."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, function_id: str) -> None:
        with self._lock:
            self._ids.add(function_id)

    def __contains__(self, function_id: object) -> bool:
        with self._lock:
            return function_id in self._ids

    def discard(self, function_id: str) -> None:
        with self._lock:
            self._ids.discard(function_id)


class CaptureState:
    """Per-function capture controllers and training label counts, created on first use."""

    def __init__(
        self,
        seed: int | None,
        history: Callable[[str], Iterable[float]] | None = None,
        *,
        refit_inline: bool = True,
    ) -> None:
        """
        Args:
            seed: seeds every controller's random slice (None: nondeterministic).
            history: function id -> times (``time.time()`` seconds) of its captures in the last
                day, counted against a new controller's budgets.
            refit_inline: passed to each controller (False: the serving worker refits).
        """
        self._seed = seed
        self._refit_inline = refit_inline
        self._history = history
        self._controllers: dict[str, CaptureController] = {}
        self._policies: dict[str, dict[str, Any]] = {}  # the stored policy each controller runs
        self._label_counts: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        # Decide + index update is serialised per function so two concurrent invokes of the same
        # image cannot both pass duplicate suppression.
        self.function_locks: dict[str, threading.Lock] = {}
        self._combiners: dict[str, Combiner[Any, Any]] = {}

    def controller(self, function: Function) -> CaptureController:
        """The function's controller, running the policy ``function`` holds.

        Callers pass the function as just read from the database, so a policy another process
        stored is applied here at this process's next use (keeping scores and budget usage).
        """
        stored = dict(function.capture_policy or {})
        with self._lock:
            controller = self._controllers.get(function.id)
            if controller is None:
                rng = np.random.default_rng(self._seed)
                controller = CaptureController(
                    CapturePolicy.from_dict(stored), rng=rng, refit_inline=self._refit_inline
                )
                if self._history is not None:
                    controller.set_committed_captures(self._history(function.id))
                self._controllers[function.id] = controller
                self.function_locks[function.id] = threading.Lock()
            elif stored != self._policies[function.id]:
                controller.update_policy(CapturePolicy.from_dict(stored))
            self._policies[function.id] = stored
            return controller

    def combiner(self, function_id: str) -> Combiner[Any, Any]:
        """The function's invoke answers: head and capture run once for the requests an encoder
        batch answered together (:mod:`service.combining`)."""
        with self._lock:
            combiner = self._combiners.get(function_id)
            if combiner is None:
                combiner = self._combiners[function_id] = Combiner()
            return combiner

    def peek(self, function_id: str) -> CaptureController | None:
        """The function's controller if it has one (creating none)."""
        with self._lock:
            return self._controllers.get(function_id)

    def set_label_counts(self, function_id: str, counts: dict[str, int]) -> None:
        with self._lock:
            self._label_counts[function_id] = dict(counts)

    def label_counts(self, function_id: str) -> dict[str, int]:
        with self._lock:
            return self._label_counts.get(function_id, {})

    def drop(self, function_id: str) -> None:
        with self._lock:
            self._controllers.pop(function_id, None)
            self._policies.pop(function_id, None)
            self._label_counts.pop(function_id, None)
            self._combiners.pop(function_id, None)

    def drop_controller(self, function_id: str) -> None:
        """Forget the function's controller (the next use makes a new one): what it learnt from
        the function's vectors, its coverage clusters and cold-start reservoir, is of a space
        they left."""
        with self._lock:
            self._controllers.pop(function_id, None)
            self._policies.pop(function_id, None)


class SpaceTails:
    """The last few tuned towers loaded to embed a function's vector space, by (function id,
    space): a space is a tuned version's number, and an artifact never changes, so an entry is
    never stale. A tower holds a few MB of weights (EfficientNet-Lite0's last blocks: 8 MB)."""

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._tails: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()

    def get(self, function_id: str, space: int, load: Callable[[], Any]) -> Any:
        """The tower of ``space``, made by ``load`` when it is not kept (outside the lock: two
        threads may load the same one, and either is kept)."""
        key = (function_id, space)
        with self._lock:
            tail = self._tails.pop(key, None)
            if tail is not None:
                self._tails[key] = tail  # the most recently used last
                return tail
        tail = load()
        with self._lock:
            self._tails[key] = tail
            while len(self._tails) > self._size:
                del self._tails[next(iter(self._tails))]
        return tail


class Runtime:
    """Holds the engine, blob store, encoders, deployed heads and indexes of one service: its
    object graph, built from the settings. Holding is all it does: :mod:`service.startup` starts
    it, and the use cases take it as their first argument.

    Tests build a fresh one per temp directory; nothing here is a module-level singleton.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        public = urlparse(settings.public_url)
        if settings.public_url and (public.scheme not in ("http", "https") or not public.netloc):
            raise ValueError(
                f"public_url must be http(s)://HOST[:PORT][/PATH], not {public.geturl()!r}"
            )
        check_finetune(settings)
        # Decoded pixels in flight, across every request of this process (service.samples).
        self.decode_budget = PixelBudget(decode_pixel_budget(settings))
        data_dir = private_dir(Path(settings.data_dir))
        self.engine = make_engine(settings.database)
        self.blobs, self.models = open_storage(settings.blob_store, data_dir)
        self.heads = DeployedHeads()
        # This app's own registry: recorded whether or not GET /metrics serves it.
        self.metrics = Metrics()
        self.encoders = encoder_pool(settings, on_batch=self.metrics.observe_batch)
        self.metrics.watch(engine=self.engine, encoders=self.encoders)
        self.indexes = IndexRegistry()
        # The tuned towers that embed functions' vector spaces, for writes (service.samples).
        self.space_tails = SpaceTails()
        # Calibrated novelty per function, and how much of the traffic it flagged (drift). Fits
        # and calibrations run in the serving worker (service.serving), never in an invoke.
        # A sample of each function's distinct invoke inputs, buffered here and flushed by the
        # serving worker into the database ring every replica shares (semi-supervised training).
        self.traffic_sample = TrafficSample(
            self.engine,
            size=settings.traffic_sample_size,
            seed=int(settings.seed) if settings.seed else None,
        )
        self.novelty = NoveltyModels(recalibrate_inline=False, on_join=self.traffic_sample.offer)
        self.novel_traffic = NoveltyTraffic()
        self.metrics.watch_novelty(self.novel_traffic)
        self.capture = CaptureState(
            int(settings.seed) if settings.seed else None,
            history=self.captures_in_last_day,
            refit_inline=False,
        )
        # The resident functions' serving snapshots, under the memory budget (service.serving).
        self.serving = Snapshots(snapshot_budget_bytes(settings))
        self.metrics.watch_snapshots(lambda: len(self.serving.resident()), self.serving.total_bytes)
        self.snapshot_worker: Stoppable | None = None  # started by service.startup.start
        self.auth = Authenticator(self.engine, settings.admin_key)
        # Shared by every replica through Redis with redis_url, else this process's own.
        self.rate_limits = make_rate_limiter(settings.redis_url)
        self.auth_throttle = AuthThrottle(
            self.auth,
            make_failure_counts(settings.redis_url),
            limit=settings.auth_failures_per_minute,
        )
        self.training = TrainingTracker()
        # Reviewers' estimated accuracies per function, with when they were fitted (monotonic
        # seconds): what weighted votes settle by (service.reviewers.accuracies).
        self.reviewer_accuracies: dict[str, tuple[float, dict[str, float]]] = {}
        # Serialises the database + in-memory switch of a function's deployed version.
        self.deploy_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        # Functions whose training was asked for without waiting; the next tick trains them.
        self.train_requests = RequestSet()
        # When a due retrain may start: its function's annotations stopped arriving.
        self.annotation_bursts = Debounce(
            quiet=settings.retrain_debounce,
            longest=max(settings.retrain_interval, settings.retrain_debounce),
        )
        # Fine-tuning's measured seconds per image and epoch here, per backbone, and the last
        # reason --finetune auto gave per function for not tuning it (service.finetune).
        self.finetune_costs: dict[str, float] = {}
        self.finetune_skips: dict[str, str] = {}
        # Set by service.startup.start (with retraining on): its tick is a use case.
        self.scheduler: RetrainScheduler | None = None

    def captures_in_last_day(self, function_id: str) -> list[float]:
        """When the function's items were captured in the last day, by any process."""
        since = datetime.now(UTC) - timedelta(days=1)
        with session_scope(self.engine) as session:
            return capture_times(session=session, function_id=function_id, since=since)

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()
        if self.snapshot_worker is not None:
            self.snapshot_worker.stop()
        self.traffic_sample.flush()  # after the worker: nothing is buffered behind it
        self.encoders.close()
        self.rate_limits.close()
        self.auth_throttle.close()
        self.engine.dispose()

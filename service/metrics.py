"""Prometheus metrics of one service: HTTP traffic, the encoder, captures, review and training.

Every app gets its own :class:`Metrics` with a fresh ``CollectorRegistry`` (no process-global
registry), so tests can build many apps in one process. Events are counted where they happen;
levels (encoder queue, review queue) are read when Prometheus scrapes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from sqlalchemy import and_
from sqlalchemy import func as sql
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from capture.drift import NoveltyTraffic
from embeddings import ImageEncoderPool
from learner import NotEnoughData, TrainingCancelled
from store import Function, ReviewItem, session_scope

# The media type of the text exposition format this module writes.
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Route label of requests no route matched (404s): one value, whatever path was asked for.
UNMATCHED_ROUTE = "(unmatched)"
# Methods counted by name; any other token a client sends is counted as "OTHER".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TRAINING_SECONDS_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


@dataclass
class TrainingRun:
    """What a training run ended in; the trainer sets ``outcome`` to the version's status."""

    outcome: str = "completed"


class Metrics:
    """The metrics of one service, registered in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.http_requests = Counter(
            "winnow_http_requests",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_seconds = Histogram(
            "winnow_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response body, by route template.",
            ["method", "route"],
            registry=registry,
        )
        self.batch_images = Histogram(
            "winnow_encoder_batch_images",
            "Images per encoder forward pass (batch size).",
            ["backbone"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "winnow_encoder_batch_seconds",
            "Seconds per encoder forward pass.",
            ["backbone"],
            buckets=BATCH_SECONDS_BUCKETS,
            registry=registry,
        )
        self.captures = Counter(
            "winnow_captures",
            "Invoke inputs captured for review, by the reason they were captured.",
            ["reason"],
            registry=registry,
        )
        self.training_runs = Counter(
            "winnow_training_runs",
            "Trainings run by this process, by outcome (deployed, rejected, not_enough_data, "
            "failed) and trigger (manual, schedule).",
            ["outcome", "trigger"],
            registry=registry,
        )
        self.training_seconds = Histogram(
            "winnow_training_duration_seconds",
            "Seconds per training run, from loading the samples to the deploy decision.",
            ["outcome"],
            buckets=TRAINING_SECONDS_BUCKETS,
            registry=registry,
        )
        self.deploy_decisions = Counter(
            "winnow_deploy_decisions",
            "Champion/challenger decisions on trained versions: deployed or rejected.",
            ["decision"],
            registry=registry,
        )

        self.evictions = Counter(
            "winnow_snapshot_evictions",
            "Functions whose serving state this process evicted to stay within its memory budget.",
            registry=registry,
        )
        self.resident_functions = Gauge(
            "winnow_resident_functions",
            "Functions whose serving snapshot this process holds in memory.",
            registry=registry,
        )
        self.resident_bytes = Gauge(
            "winnow_resident_bytes",
            "Estimated bytes of the resident functions' serving state (heads, indexes, windows).",
            registry=registry,
        )

    def count_eviction(self) -> None:
        self.evictions.inc()

    def watch_snapshots(self, count: Callable[[], int], nbytes: Callable[[], int]) -> None:
        """Read the resident functions and their bytes at each scrape."""
        self.resident_functions.set_function(count)
        self.resident_bytes.set_function(nbytes)

    def watch(self, *, engine: Engine, encoders: ImageEncoderPool) -> None:
        """Read the encoder and review queues at each scrape."""
        self.registry.register(QueueCollector(engine, encoders))

    def watch_novelty(self, traffic: NoveltyTraffic) -> None:
        """Read each function's invokes, scored and novel ones, at each scrape (the drift
        signal and the capture rate's denominator)."""
        self.registry.register(NoveltyCollector(traffic))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in KNOWN_METHODS else "OTHER"
        self.http_requests.labels(method=method, route=route, status=str(status)).inc()
        self.http_seconds.labels(method=method, route=route).observe(seconds)

    def observe_batch(self, backbone: str, images: int, seconds: float) -> None:
        """An encoder forward pass (the encoder pool's ``on_batch`` observer)."""
        self.batch_images.labels(backbone=backbone).observe(images)
        self.batch_seconds.labels(backbone=backbone).observe(seconds)

    def count_capture(self, reason: str) -> None:
        self.captures.labels(reason=reason).inc()

    @contextmanager
    def training_run(self, trigger: str) -> Iterator[TrainingRun]:
        """Time a training run and count its outcome; an exception counts as a failure."""
        run = TrainingRun()
        started = time.perf_counter()
        try:
            yield run
        except NotEnoughData:
            run.outcome = "not_enough_data"
            raise
        except TrainingCancelled:
            run.outcome = "cancelled"
            raise
        except BaseException:
            run.outcome = "failed"
            raise
        finally:
            self.training_runs.labels(outcome=run.outcome, trigger=trigger).inc()
            self.training_seconds.labels(outcome=run.outcome).observe(time.perf_counter() - started)
            if run.outcome in ("deployed", "rejected"):
                self.deploy_decisions.labels(decision=run.outcome).inc()

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text format (runs the scrape-time queries)."""
        return generate_latest(self.registry)


class QueueCollector(Collector):
    """Levels read at scrape time: images waiting per encoder, pending review items per function."""

    def __init__(self, engine: Engine, encoders: ImageEncoderPool) -> None:
        self._engine = engine
        self._encoders = encoders

    def collect(self) -> Iterable[Metric]:
        waiting = GaugeMetricFamily(
            "winnow_encoder_queue_images",
            "Images admitted to an encoder and not yet taken into a batch.",
            labels=["backbone"],
        )
        rejected = CounterMetricFamily(
            "winnow_encoder_rejected_requests",
            "Requests an encoder refused because its queue was full (answered 503).",
            labels=["backbone"],
        )
        for spec in self._encoders.loaded():
            stats = self._encoders.get(spec).stats()
            waiting.add_metric([spec], stats.pending_images)
            rejected.add_metric([spec], stats.rejected_requests)
        yield waiting
        yield rejected
        pending = GaugeMetricFamily(
            "winnow_review_queue_pending",
            "Review items waiting for a person, per function (read from the shared database).",
            labels=["function_id"],
        )
        for function_id, count in self._pending_per_function():
            pending.add_metric([function_id], count)
        yield pending

    def _pending_per_function(self) -> list[tuple[str, int]]:
        """One GROUP BY over every function, so functions with an empty queue read 0."""
        is_pending = and_(
            col(ReviewItem.function_id) == col(Function.id), col(ReviewItem.status) == "pending"
        )
        query = (
            select(Function.id, sql.count(col(ReviewItem.id)))
            .join(ReviewItem, is_pending, isouter=True)
            .group_by(col(Function.id))
        )
        with session_scope(self._engine) as session:
            return [(function_id, int(count)) for function_id, count in session.exec(query).all()]


class NoveltyCollector(Collector):
    """Invokes judged for capture, those whose novelty was scored, and those that were novel,
    per function: alert on
    ``rate(winnow_novel_invokes_total[1h]) / rate(winnow_scored_invokes_total[1h])``."""

    def __init__(self, traffic: NoveltyTraffic) -> None:
        self._traffic = traffic

    def collect(self) -> Iterable[Metric]:
        invokes = CounterMetricFamily(
            "winnow_invokes",
            "Invokes judged for capture, their novelty scored or not (the capture rate's "
            "denominator).",
            labels=["function_id"],
        )
        scored = CounterMetricFamily(
            "winnow_scored_invokes",
            "Invokes whose calibrated novelty was scored (the function had a novelty model).",
            labels=["function_id"],
        )
        novel = CounterMetricFamily(
            "winnow_novel_invokes",
            "Invokes whose calibrated novelty passed the function's noveltyThreshold.",
            labels=["function_id"],
        )
        share = GaugeMetricFamily(
            "winnow_novel_share",
            "Share of this process's scored invokes that were novel in the current UTC hour.",
            labels=["function_id"],
        )
        for function_id, totals in sorted(self._traffic.totals().items()):
            invokes.add_metric([function_id], totals.invokes)
            scored.add_metric([function_id], totals.scored)
            novel.add_metric([function_id], totals.novel)
            current = self._traffic.current_share(function_id)
            if current is not None:
                share.add_metric([function_id], current)
        yield invokes
        yield scored
        yield novel
        yield share

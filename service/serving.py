"""Serving snapshots: what an invoke reads, built off its path and swapped whole.

Each resident function has one immutable :class:`Snapshot`: the function's row and label ids as
read when it was built, the model version that serves it (or why none can), its label counts, its
calibrated novelty model and its capture controller. An invoke takes the snapshot it finds when
it starts and reads only it. The traffic an invoke contributes (the novelty window, the cold-start
reservoir, the adaptive threshold's scores, the capture index's pending items) is appended to
the function's accumulators, never fitted on the request's thread: the refits it makes due
(cold-start clusters, the novelty calibration to the traffic, a new novelty model, version 0
after a label change) are requested from the per-process worker (:class:`SnapshotWorker`), which
builds and publishes the next snapshot.

How a snapshot stays current:

* a write in this process that changes what one holds (a deploy, version 0 rebuilt, a label
  renamed, a capture policy) invalidates it: the next invoke builds a new one from the state kept
  (database reads and the head already in memory: a few milliseconds, no fitting);
* every ``snapshot_poll`` seconds the worker compares each resident snapshot with the database
  (deployed version, labels, capture policy, annotations) and rebuilds the ones another replica
  changed: replicas follow each other within that interval;
* a function not resident (never invoked here, or evicted) is loaded by its first invoke: its
  deployed artifact read and checked, its capture index rebuilt from the database.

Memory: the resident functions' state is weighed after every build and kept under the
``snapshot_memory_mb`` budget by evicting the least recently used. Eviction drops the head, the
index, the capture controller and the novelty model and traffic window: the next invoke rebuilds
the first three from the database and artifacts (budgets count the persisted captures of the last
day, so none is handed out twice). Lost with it are the in-memory windows: the adaptive
threshold's recent scores (it starts again from the policy's ``initial_threshold``), the novelty
window (novelty falls back to the plain calibrated distance until ``MIN_TRAFFIC`` inputs have
been seen again), the coverage clusters and the cold-start reservoir (warming up again for 100
inputs). The hourly novel-traffic counts (drift) are kept: they are small.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import faiss
import numpy as np
from sqlmodel import col, select

from capture import CaptureController
from capture.novelty import NoveltyModel
from learner import Deployed
from learner.finetune import TunedHead
from service.capture import rebuild_index
from service.deploys import follow_deployed
from service.functions import get_function
from service.novelty import novelty_model
from service.runtime import Runtime
from service.zero_shot import ZERO_SHOT_VERSION, ensure_zero_shot
from store import Function, Label, session_scope

log = logging.getLogger("winnow.serving")

# What a resident function weighs beyond the arrays counted below (Python objects, the head's
# and the novelty model's estimators, FAISS and allocator overhead). B9 measured it: at 1,000
# functions under a 256 MiB budget with 64 KiB here, RSS grew 435 MiB while the estimate read
# 259 MiB over a median of 362 resident functions: about 0.5 MiB each uncounted; rounded up.
BASE_BYTES = 768 * 1024
# Functions whose rows one poll reads in a query.
POLL_CHUNK = 500
# The worker thread's nice value: refits wait while invokes want the CPU.
WORKER_NICENESS = 10


@dataclass(frozen=True)
class Snapshot:
    """One function's serving state as built at one moment; never changed once published."""

    function: Function  # the row as read at the build: never written through
    label_ids: dict[str, str]
    model: Deployed | None
    # Why no model serves though a version is deployed (its artifact cannot be loaded here).
    unavailable: str | None
    label_counts: dict[str, int]
    novelty: NoveltyModel | None
    novelty_revision: int  # the annotation counter the novelty model was fitted at (-1: none)
    controller: CaptureController
    key: tuple[Any, ...]  # what the database said: compared by the worker's poll


def snapshot_key(function: Function, labels: list[tuple[str, str, str | None]]) -> tuple[Any, ...]:
    policy = json.dumps(function.capture_policy or {}, sort_keys=True)
    return (function.deployed_version, policy, tuple(sorted(labels)))


def serving_snapshot(rt: Runtime, function_id: str) -> Snapshot:
    """The function's current snapshot, built now if it has none (first use, evicted, or
    invalidated by a write here); 404 for a function that does not exist."""
    snapshot = rt.serving.get(function_id)
    if snapshot is None:
        snapshot = build_snapshot(rt, function_id)
        rt.serving.request(function_id, reread=True)  # the refits the quick build left out
    return snapshot


def build_snapshot(rt: Runtime, function_id: str, *, refit: bool = False) -> Snapshot:
    """Read the function, make its state resident and publish a snapshot of it.

    Without ``refit`` nothing is fitted (the novelty model is the last one fitted, if any): what
    a request may wait for. With it (the worker) a novelty model missing or behind the labelled
    data is fitted first (refitted at most once per ``NoveltyModels.min_refit_seconds``), before
    the build lock is taken: an invoke that must build meanwhile does not wait for the fit.
    """
    if refit:
        with session_scope(rt.engine) as session:
            current = get_function(session, function_id)
        if current.deployed_version is not None:  # novelty is scored once a model serves
            novelty_model(rt, current)  # fitted again if its labelled data moved on
    with rt.serving.build_lock(function_id):
        resident = function_id in rt.serving
        generation = rt.serving.generation(function_id)
        with session_scope(rt.engine) as session:
            function = get_function(session, function_id)
            labels = [
                (label_id, name, description)
                for label_id, name, description in session.exec(
                    select(Label.id, Label.name, Label.description).where(
                        Label.function_id == function_id
                    )
                ).all()
            ]
        if not resident:  # writes made meanwhile may have indexed some rows: index them all
            rt.indexes.drop(function_id)
        if rt.serving.moved(function_id, function.vector_space):  # a deploy moved the vectors
            drop_vectors(rt, function_id)
        model, unavailable = _serving_model(rt, function)  # rebuilds it when following a deploy
        if rt.indexes.get(function_id) is None:
            rebuild_index(rt, function_id)
        fitted = rt.novelty.peek(function_id)
        snapshot = Snapshot(
            function=function,
            label_ids={name: label_id for label_id, name, _ in labels},
            model=model,
            unavailable=unavailable,
            label_counts=rt.capture.label_counts(function_id),
            novelty=fitted.model if fitted is not None else None,
            novelty_revision=fitted.revision if fitted is not None else -1,
            controller=rt.capture.controller(function),  # applies a policy stored elsewhere
            key=snapshot_key(function, labels),
        )
        # not published if a write here invalidated it meanwhile: this request may still use
        # it (as if it had started before the write), the next one builds afresh
        rt.serving.publish(function_id, snapshot, state_nbytes(rt, function_id), generation)
        return snapshot


def _serving_model(rt: Runtime, function: Function) -> tuple[Deployed | None, str | None]:
    """The version that serves ``function`` here (following a deploy made elsewhere, building
    version 0 from changed labels), or None and why none can although one is deployed."""
    follow_deployed(rt, function)
    if function.deployed_version in (None, ZERO_SHOT_VERSION):
        zero_shot = ensure_zero_shot(rt, function)  # version 0, current with the labels
        if zero_shot is not None:
            return zero_shot, None
    deployed = rt.heads.get(function.id)
    if deployed is None and function.deployed_version is not None:
        return None, (
            f"function {function.id} has version {function.deployed_version} deployed, but this "
            "server cannot load it (is the data dir's models/ shared?); see its log"
        )
    return deployed, None


def refits_due(rt: Runtime, snapshot: Snapshot, dim: int) -> bool:
    """Whether the traffic an invoke just added made a refit due (checked after every invoke;
    the worker does the refit)."""
    if snapshot.controller.cold_start_refit_due:
        return True
    window = rt.novelty.window(snapshot.function.id)
    return (
        snapshot.novelty is not None
        and snapshot.novelty.dim == dim
        and window is not None
        and window.calibration_due(snapshot.novelty)
    )


def refresh(rt: Runtime, function_id: str, reread: bool) -> None:
    """The worker's job for one function: the refits due, after building its snapshot from the
    database again if ``reread`` (or if a write here invalidated it)."""
    if function_id not in rt.serving:
        return  # evicted or deleted since it was asked for
    snapshot = rt.serving.peek(function_id)
    if reread or snapshot is None:
        snapshot = build_snapshot(rt, function_id, refit=True)
    index = rt.indexes.get(function_id)
    if index is not None:
        snapshot.controller.refit_cold_start(index)
    window, novelty = rt.novelty.window(function_id), snapshot.novelty
    if (
        novelty is not None
        and window is not None
        and window.dim == novelty.dim
        and window.calibration_due(novelty)
    ):
        window.recalibrate(novelty)
    rt.serving.resize(function_id, state_nbytes(rt, function_id))


def poll(rt: Runtime) -> None:
    """Ask for a refresh of every resident function the database says changed (another replica
    deployed, labels or the capture policy changed, annotations that the novelty model has not
    seen), forget deleted ones, and evict beyond the memory budget."""
    resident = rt.serving.resident()
    rows: dict[str, Function] = {}
    labels: dict[str, list[tuple[str, str, str | None]]] = {f: [] for f in resident}
    for start in range(0, len(resident), POLL_CHUNK):
        chunk = resident[start : start + POLL_CHUNK]
        with session_scope(rt.engine) as session:
            rows.update(
                (f.id, f) for f in session.exec(select(Function).where(col(Function.id).in_(chunk)))
            )
            for function_id, label_id, name, description in session.exec(
                select(Label.function_id, Label.id, Label.name, Label.description).where(
                    col(Label.function_id).in_(chunk)
                )
            ):
                labels[function_id].append((label_id, name, description))
    for function_id in resident:
        function = rows.get(function_id)
        if function is None:
            evict(rt, function_id)  # deleted through another replica
            continue
        snapshot = rt.serving.peek(function_id)
        if snapshot is None:
            continue  # invalidated: the next invoke builds it
        stale = snapshot.key != snapshot_key(function, labels[function_id])
        unseen = snapshot.novelty_revision not in (-1, function.annotation_counter)
        if stale or unseen:
            rt.serving.request(function_id, reread=True)
    evict_over_budget(rt)


def evict_over_budget(rt: Runtime) -> None:
    for function_id in rt.serving.over_budget():
        evict(rt, function_id)


def evict(rt: Runtime, function_id: str) -> None:
    """Drop a function's resident state (its next invoke loads it again)."""
    with rt.serving.build_lock(function_id):
        if not rt.serving.remove(function_id):
            return
        rt.heads.remove(function_id)
        rt.indexes.drop(function_id)
        rt.capture.drop(function_id)
        rt.novelty.drop(function_id)
    rt.metrics.count_eviction()
    log.debug("function %s: evicted from memory", function_id)


def drop_vectors(rt: Runtime, function_id: str) -> None:
    """Drop what this process derived from the function's vectors: its capture index, capture
    controller (coverage clusters, cold-start reservoir), novelty model and traffic window. The
    caller holds the function's build lock."""
    rt.indexes.drop(function_id)
    rt.capture.drop_controller(function_id)
    rt.novelty.drop(function_id)


def state_nbytes(rt: Runtime, function_id: str) -> int:
    """What the function's resident state weighs (approximately): its head, index, novelty model
    and window, capture controller."""
    deployed, index = rt.heads.get(function_id), rt.indexes.get(function_id)
    controller = rt.capture.peek(function_id)
    return (
        BASE_BYTES
        + (object_nbytes(deployed.head) if deployed is not None else 0)
        + (index.nbytes() if index is not None else 0)
        + rt.novelty.nbytes(function_id)
        + (controller.nbytes() if controller is not None else 0)
    )


def object_nbytes(value: Any, depth: int = 4) -> int:
    """The numpy arrays an object holds, a few attributes deep (heads are scikit-learn style
    estimators: their fitted state is arrays), and a tuned version's weights."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, TunedHead):
        return value.nbytes() + object_nbytes(value.classifier, depth)
    if depth == 0:
        return 0
    if isinstance(value, dict):
        return sum(object_nbytes(v, depth - 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(object_nbytes(v, depth - 1) for v in value)
    if hasattr(value, "__dict__"):
        return object_nbytes(vars(value), depth - 1)
    return 0


class SnapshotWorker:
    """The per-process thread that refreshes snapshots, polls the database and writes the
    buffered traffic sample (:mod:`service.traffic_sample`) every ``flush_seconds``."""

    def __init__(self, rt: Runtime, *, poll_seconds: float, flush_seconds: float = 10.0) -> None:
        self._rt, self._poll, self._flush = rt, poll_seconds, flush_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="winnow-snapshots", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._rt.serving.wake()
        self._thread.join(timeout)

    def _run(self) -> None:
        yield_to_requests()
        next_poll = time.monotonic() + self._poll
        next_flush = time.monotonic() + self._flush
        while not self._stopping.is_set():
            wait = max(0.0, min(next_poll, next_flush) - time.monotonic())
            due = self._rt.serving.next_due(wait, self._stopping.is_set)
            if due is not None:
                function_id, reread = due
                self._guarded(partial(refresh, function_id=function_id, reread=reread))
                self._guarded(evict_over_budget)
                self._rt.serving.done()
            if time.monotonic() >= next_poll:
                self._guarded(poll)
                next_poll = time.monotonic() + self._poll
            if time.monotonic() >= next_flush:
                self._guarded(flush_traffic)
                next_flush = time.monotonic() + self._flush

    def _guarded(self, job: Callable[[Runtime], None]) -> None:
        try:
            job(self._rt)
        except Exception:  # the worker outlives any one job; the next poll asks again
            log.exception("a serving snapshot job failed")


def flush_traffic(rt: Runtime) -> None:
    """Write the invoke vectors buffered since the last flush into the functions' samples."""
    rt.traffic_sample.flush()


def yield_to_requests() -> None:
    """Make the calling thread (the worker) give way to invokes on a busy machine: nice 10 for
    this thread alone (Linux sets it per thread; the OpenMP team it starts inherits it), and
    FAISS's k-means at one thread here, leaving the other cores to the encoder."""
    with contextlib.suppress(OSError):  # not Linux, or not permitted
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)
    faiss.omp_set_num_threads(1)  # libgomp keeps it per thread


def settle(rt: Runtime, timeout: float = 30.0) -> bool:
    """Wait until the worker has nothing left to refresh (tests, benchmarks); False on timeout."""
    deadline = time.monotonic() + timeout
    while not rt.serving.idle():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True

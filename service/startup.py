"""Start-up: what a service does once its object graph is built, before it answers requests.

In order: one BLAS thread for the process, the admin key, the sweep of crash leftovers, digests
for artifacts an older winnow wrote, the serving snapshots' worker (functions load at their first
use), then the retrain scheduler with its tick passed in (as vLLM's ``init_app_state`` builds the
serving objects and hands them their collaborators). The runtime holds state; this module and the
use cases act on it, so neither imports the other in a circle.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlmodel import col, select
from threadpoolctl import threadpool_limits

from learner import ArtifactNotFound
from learner.scheduler import RetrainScheduler
from service.runtime import SHARED_SWEEP_GRACE_S, Runtime
from service.serving import SnapshotWorker
from service.spaces import settle_spaces
from service.training import retrain_check
from store import BlobStore, ModelVersion, ReviewItem, Sample, session_scope

log = logging.getLogger("winnow")

# BLAS (OpenBLAS, MKL) threads of the service process. Its matrix products are small (a batch of
# invokes against the traffic window, a head's rows; training already runs with one thread, see
# learner.crossval.blas_thread_limit), and OpenBLAS's extra threads spin-wait whenever the cores
# are busy, as the encoder keeps them: B2's profile (capture on, onnx-int8 EfficientNet-Lite0,
# 2 cores) put 3.3 ms of CPU per invoke in them once invokes were scored several at a time.
# Set from start-up's thread, the count holds for every thread that never sets its own: the
# request threads, for numpy's and scipy's OpenBLAS (FAISS's is an OpenMP build, whose count each
# thread keeps for itself; FAISS searches one row at a time here, without BLAS).
BLAS_THREADS = 1


def start(rt: Runtime) -> None:
    """Recover state after a (possibly unclean) stop, then start retraining (if it is on)."""
    threadpool_limits(limits=BLAS_THREADS, user_api="blas")  # process-wide, from now on
    rt.auth.ensure_admin_key(Path(rt.settings.data_dir) / "admin-key")
    sweep_orphans(rt)
    adopt_unrecorded_digests(rt)
    settle_spaces(rt)
    log.info("default backbone: %s", rt.encoders.default_spec)
    # functions are loaded by their first use, and evicted under the memory budget
    rt.snapshot_worker = SnapshotWorker(
        rt,
        poll_seconds=rt.settings.snapshot_poll,
        flush_seconds=rt.settings.traffic_flush_seconds,
    )
    rt.snapshot_worker.start()
    if rt.settings.retrain_interval > 0:
        rt.scheduler = RetrainScheduler(
            interval=rt.settings.retrain_interval, tick=lambda: retrain_check(rt)
        )
        rt.scheduler.start()


def sweep_orphans(rt: Runtime) -> None:
    """Remove blobs and artifact temp files left behind by a crash between write steps.

    On SQLite this process is the only writer, so everything unreferenced goes. On
    PostgreSQL replicas sharing the data dir may be writing right now (a blob before its
    row, an artifact's temp file before its rename): only files older than
    ``SHARED_SWEEP_GRACE_S`` go, and younger crash leftovers wait for a later start.
    """
    alone = rt.engine.dialect.name == "sqlite" and isinstance(rt.blobs, BlobStore)
    grace = 0.0 if alone else SHARED_SWEEP_GRACE_S
    with session_scope(rt.engine) as session:
        referenced = set(session.exec(select(Sample.blob)).all())
        referenced |= set(session.exec(select(ReviewItem.blob)).all())
    removed = rt.blobs.sweep(referenced, older_than_seconds=grace)
    removed += rt.models.sweep_temp_files(older_than_seconds=grace)
    if removed:
        log.warning("startup sweep removed %d orphan file(s)", removed)


def adopt_unrecorded_digests(rt: Runtime) -> None:
    """Record the SHA-256 of artifacts that a winnow from before digests wrote, so that they
    keep serving after the upgrade and every later load is checked against it.

    Only rows without a digest are touched, and this version records one with every artifact
    it writes, so this happens once, at the first start after the upgrade: a file changed
    before that start is adopted as it is found (read and hashed, never unpickled). Retrain
    (or delete the version) if the model store may have been tampered with before.
    """
    adopted = []
    with session_scope(rt.engine) as session:
        unrecorded = select(ModelVersion).where(col(ModelVersion.artifact_sha256).is_(None))
        for row in session.exec(unrecorded):
            try:
                row.artifact_sha256 = rt.models.digest(row.function_id, row.version)
            except ArtifactNotFound:
                continue
            session.add(row)
            adopted.append(f"{row.function_id} v{row.version}")
    if adopted:
        log.warning(
            "recorded the SHA-256 of %d model artifact(s) written before digests were kept, "
            "as found now: %s",
            len(adopted),
            ", ".join(adopted),
        )

"""The fine-tune job: a function's backbone tail and a new head tuned on its stored images,
deployed only when it wins over a frozen head on the same holdout (:mod:`learner.finetune`).

A run holds the function's training slot and lock (as a head's training does) and the cluster's
``finetune`` lock: one fine-tune at a time across replicas sharing the database. It splits the
labelled samples as B13 does (``python -m bench.finetune``): a stratified 20% holdout; on the rest
a head of the usual families (:func:`learner.train_head` on the stored vectors, in the function's
current space) and the tuned challenger (:func:`learner.tune_job.run_tune_job`: each stored
image and its augmented views through the backbone's trunk once, then the tail tuned and
early-stopped on its own validation split). The job runs in this process with the in-process
encoder, and with ``--encoder ray`` on a Ray worker (:mod:`learner.ray_tuning`: a GPU where the
cluster has one), never in an API replica. The challenger wins when
:func:`learner.champion.decide_wins` says it is ahead of that head on the holdout with a one-sided
sign test p < 0.05; its recipe is then trained again on every labelled sample for the epochs its
early stopping kept (:func:`_refit`), and that model deploys.

The version it records serves invokes with the tuned tail on the shared trunk and answers with
its tuned linear layer (:class:`learner.finetune.TunedHead`); when it deploys, the function's
stored vectors (samples, queue, traffic) move to the tuned tail's features, its vector space
(:mod:`service.spaces`), and every question about them is asked there. While a tuned version
serves, a retrain fits the usual heads on those features (:func:`service.training.train_function`,
served with the same tail), and the scheduler tunes again once the annotations have grown by half
(:func:`finetune_due`); rolling back to a version of another space moves the vectors back.

A cancelled or crashed run records nothing: the artifact is written before the row names it (an
unnamed artifact's number is never reused), and the deployed version is unchanged.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import overload

import numpy as np
import torch
from PIL import Image
from sklearn.model_selection import train_test_split
from sqlalchemy import func as sql
from sqlmodel import col, select

from embeddings import BatchingEncoder
from embeddings.tuning import TUNABLE_SPECS, split_tower
from learner import NotEnoughData, train_head
from learner.champion import compare_on, decide_wins, predicted_labels
from learner.finetune import (
    TUNED_HEAD,
    TuneConfig,
    TunedHead,
    TuneResult,
    estimated_tuning_seconds,
    seconds_per_image_epoch,
)
from learner.tune_job import TuneJob, TuneOutcome, run_tune_job
from service.deploys import deployed_row, record_version
from service.errors import Conflict, ServiceUnavailable
from service.functions import get_function
from service.labelled import labelled_data
from service.runtime import Runtime
from store import Function, ModelVersion, Sample, session_scope, shared_lock

log = logging.getLogger("winnow.training")

HOLDOUT = 0.2
"""Share of the labelled samples the guard judges on (stratified; neither side is fitted on it)."""


def finetune_unavailable(function: Function) -> str | None:
    """Why ``function`` cannot be fine-tuned (its backbone), or None when it can."""
    if function.backbone not in TUNABLE_SPECS:
        return (
            f"fine-tuning is available for {', '.join(TUNABLE_SPECS)} functions; function "
            f"{function.id} uses {function.backbone}"
        )
    return None


def finetune_due(rt: Runtime, function: Function) -> bool:
    """Whether the scheduler should tune ``function`` now (``--finetune auto``): it can be
    tuned here, a trained head serves it, each of its labels has ``finetune_min_per_label``
    labelled samples, and its annotations have grown by half since its last tuned version
    (deployed or not), if it has one."""
    if finetune_unavailable(function) is not None or function.deployed_version is None:
        return False
    with session_scope(rt.engine) as session:
        if deployed_row(session, function) is None:
            return False
        counts = session.exec(
            select(sql.count(col(Sample.id)))
            .where(Sample.function_id == function.id, col(Sample.label_id).is_not(None))
            .group_by(col(Sample.label_id))
        ).all()
        last_tuned = session.exec(
            select(sql.max(ModelVersion.annotation_counter)).where(
                ModelVersion.function_id == function.id, ModelVersion.head == TUNED_HEAD
            )
        ).one()
    if len(counts) < 2 or min(counts) < rt.settings.finetune_min_per_label:
        return False
    if last_tuned is not None and function.annotation_counter < 1.5 * last_tuned:
        return False
    too_slow = finetune_too_slow(rt, function, sum(counts))
    if too_slow is not None and rt.finetune_skips.get(function.id) != too_slow:
        log.info("function %s: not fine-tuned: %s", function.id, too_slow)
    rt.finetune_skips[function.id] = too_slow or ""
    return too_slow is None


def finetune_too_slow(rt: Runtime, function: Function, labelled: int) -> str | None:
    """Why a fine-tune of ``labelled`` samples is more than ``--finetune-max-minutes`` here (the
    hardware does not make it affordable), or None. The seconds one image costs an epoch are
    measured at the first ask per backbone (:func:`learner.finetune.seconds_per_image_epoch`, a
    few seconds) and the run's length estimated as if it ran every epoch and won (about right:
    early stopping ends most runs sooner, and the timed steps estimated 0.68 of the time a whole
    tune took in ``python -m bench.tuned_serving``). Not applied on an accelerator (the job trains
    there), nor with ``--encoder ray``: the job runs on a Ray worker whose hardware is not
    measured here."""
    limit = rt.settings.finetune_max_minutes
    if limit <= 0 or rt.settings.encoder == "ray":
        return None
    encoder = rt.encoders.get(function.backbone)
    assert isinstance(encoder, BatchingEncoder)  # the in-process encoder (not ray)
    if encoder.backbone.device.type != "cpu":
        return None  # an accelerator trains the tail: affordable
    config = tune_config(rt)
    per_image = rt.finetune_costs.get(function.backbone)
    if per_image is None:
        per_image = rt.finetune_costs[function.backbone] = _measure_cost(encoder, config)
    # the judged run, then (when it wins) the refit on every label for the epochs its early
    # stopping kept: B13's kept 4-6 of 10, so half the epochs are counted
    seconds = estimated_tuning_seconds(labelled, config, per_image, HOLDOUT)
    refit = estimated_tuning_seconds(labelled, config.refit(config.max_epochs // 2), per_image)
    minutes = (seconds + refit) / 60
    if minutes <= limit:
        return None
    return (
        f"tuning {labelled} labelled samples would take about {minutes:,.1f} minutes on this "
        f"machine ({1000 * per_image:.0f} ms per image and epoch at {config.tuned_blocks} "
        f"blocks), over --finetune-max-minutes {limit:g}"
    )


def _measure_cost(encoder: BatchingEncoder, config: TuneConfig) -> float:
    backbone = encoder.backbone
    tower = split_tower(backbone.spec, config.tuned_blocks)
    pixels = backbone.preprocess(Image.new("RGB", (256, 256), (128, 128, 128)))[None]
    with torch.inference_mode():
        activations = tower.trunk(pixels).clone()
    return seconds_per_image_epoch(tower.tail, activations, config)


def tune_config(rt: Runtime) -> TuneConfig:
    """The recipe B13 measured best (``python -m bench.finetune``, docs/models.md), at
    ``--finetune-blocks``."""
    return TuneConfig(
        tuned_blocks=rt.settings.finetune_blocks,
        label_smoothing=0.1,
        mixup=0.4,
        seed=int(rt.settings.seed or 0),
    )


def finetune_function(
    rt: Runtime, function_id: str, *, trigger: str = "manual", wait: bool = True
) -> ModelVersion | None:
    """Tune a challenger for the function and deploy it if it wins; the recorded version
    (deployed or rejected), or None when ``wait`` is False and the function is training, or
    another fine-tune runs in the cluster.

    Raises:
        NotFound: no such function.
        Conflict: the function's backbone cannot be fine-tuned.
        NotEnoughData: fewer than two labels, or a label with fewer than 5 labelled samples.
        TrainingCancelled: :meth:`learner.scheduler.TrainingTracker.cancel` stopped it.
        ServiceUnavailable: the Ray worker tuning it died.
    """
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
    why_not = finetune_unavailable(function)
    if why_not is not None:
        raise Conflict(why_not)
    with rt.training.run(function_id, trigger, wait=wait, kind="finetune") as started:
        if not started:
            return None
        with shared_lock(rt.engine, f"train:{function_id}", wait=wait) as held:
            if not held:
                return None
            with rt.metrics.training_run(trigger) as run:
                with shared_lock(rt.engine, "finetune", wait=wait) as ours:  # one in the cluster
                    record = _tune(rt, function_id, trigger) if ours else None
                run.outcome = "skipped" if record is None else record.status
                return record


def _tune(rt: Runtime, function_id: str, trigger: str) -> ModelVersion:
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
    counter = function.annotation_counter
    data = labelled_data(rt, function_id)
    names = np.asarray(data.names, dtype=object)
    labels, counts = np.unique(names.astype(str), return_counts=True)
    if len(labels) < 2 or counts.min() < 5:
        raise NotEnoughData(
            "fine-tuning needs labelled samples of at least 2 labels, each with 5 or more; "
            f"function {function_id} has {dict(zip(labels.tolist(), counts.tolist(), strict=True))}"
        )
    config = tune_config(rt)
    seed = config.seed
    fit, holdout = train_test_split(
        np.arange(len(names)), test_size=HOLDOUT, stratify=names.astype(str), random_state=seed
    )
    job = TuneJob(
        spec=function.backbone,
        sample_ids=list(data.sample_ids),
        labels=names,
        fit=np.sort(fit),
        holdout=np.sort(holdout),
        config=config,
        max_pixels=rt.settings.max_image_pixels,
    )
    rt.training.phase(function_id, "training")
    recipe = train_head(data.vectors[job.fit], names[job.fit], seed=seed).head
    outcome = _run_job(rt, function, job)
    tuned = outcome.result
    rt.training.phase(function_id, "comparing")
    comparison = compare_on(
        "holdout",
        np.ones(len(job.holdout), dtype=bool),
        truth=names[job.holdout],
        challenger_pred=outcome.holdout_predictions,
        champion_pred=predicted_labels(recipe, data.vectors[job.holdout]),
    )
    decision = decide_wins(comparison)
    refit = _refit(rt, function, job, tuned) if decision.deploy else None
    head = TunedHead(function.backbone, tuned.model if refit is None else refit.model)
    record = record_version(
        rt,
        function_id,
        head,
        decision,
        labels=[str(c) for c in head.classes_],
        label_counts=dict(Counter(data.names)),
        head=TUNED_HEAD,
        own_space=True,
        params=config.to_dict(),
        metrics={
            "holdout_accuracy": comparison.challenger_accuracy,
            "frozen_holdout_accuracy": comparison.champion_accuracy,
            "tuning": tuned.summary(),
            **({} if refit is None else {"refit": _refit_summary(refit)}),
            "tuned_bytes": head.nbytes(),
        },
        sample_count=len(names),
        annotation_counter=counter,
        train_seconds=tuned.seconds + (0.0 if refit is None else refit.seconds),
        trigger=trigger,
    )
    log.info(
        "function %s: tuned version %d %s: %s",
        function_id,
        record.version,
        record.status,
        record.decision["reason"],
    )
    return record


def _refit(rt: Runtime, function: Function, job: TuneJob, tuned: TuneResult) -> TuneResult:
    """The winning challenger's recipe trained again on every labelled sample (the guard's
    holdout and its own validation split too) for the epochs its early stopping kept: what
    deploys, as a frozen head's recipe is judged out of fold and served refitted on every
    sample. B13 measured it at 13 blocks and 2,000 labels: +4.3 points over the frozen head
    where the judged model gave +3.5 (``python -m bench.finetune --refit-from``, docs/models.md)."""
    everything = np.arange(len(job.sample_ids))
    again = replace(job, fit=everything, holdout=everything[:0], config=tuned.refit_config())
    return _run_job(rt, function, again, phase="refitting").result


def _refit_summary(refit: TuneResult) -> dict[str, float]:
    return {
        "epochs": refit.config.max_epochs,
        "train_images": refit.train_images,
        "seconds": refit.seconds,
    }


class _Control:
    """The training tracker's side of a job (:class:`learner.tune_job.JobControl`); with
    ``phase``, the job's loading and training show as that one phase (a refit's)."""

    def __init__(self, rt: Runtime, function_id: str, phase: str | None = None) -> None:
        self._rt, self._function_id, self._within = rt, function_id, phase

    def cancelled(self) -> bool:
        return self._rt.training.cancelled(self._function_id)

    def phase(self, phase: str, done: float) -> None:
        if self._within is not None:
            phase, done = self._within, done if phase == "training" else 0.0
        self._rt.training.phase(self._function_id, phase, done)


class _StoredImages(Sequence[bytes]):
    """The samples' stored images, read from the blob store one at a time."""

    def __init__(self, rt: Runtime, sample_ids: Sequence[str]) -> None:
        with session_scope(rt.engine) as session:
            blobs = dict(
                session.exec(
                    select(Sample.id, Sample.blob).where(col(Sample.id).in_(list(sample_ids)))
                ).all()
            )
        self._rt, self._keys = rt, [blobs[sample_id] for sample_id in sample_ids]

    def __len__(self) -> int:
        return len(self._keys)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return [self._rt.blobs.get(key) for key in self._keys[index]]
        return self._rt.blobs.get(self._keys[index])


def _run_job(
    rt: Runtime, function: Function, job: TuneJob, *, phase: str | None = None
) -> TuneOutcome:
    """Run the job in this process with the function's in-process encoder, or (``--encoder
    ray``) on the Ray cluster, which the images travel to; ``phase``: see :class:`_Control`."""
    control = _Control(rt, function.id, phase)
    images = _StoredImages(rt, job.sample_ids)
    encoder = rt.encoders.get(function.backbone)  # with --encoder ray: this process joins Ray
    if isinstance(encoder, BatchingEncoder):
        backbone = encoder.backbone
        return run_tune_job(job, images, backbone.preprocess, backbone.device, control)
    from learner.ray_tuning import TuneWorkerLost, tune_on_ray  # imports Ray

    try:
        return tune_on_ray(job, images, control)
    except TuneWorkerLost as error:
        raise ServiceUnavailable(str(error)) from error

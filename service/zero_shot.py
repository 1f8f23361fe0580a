"""Version 0: the zero-shot head a function serves from its label names until a trained head
beats it (backbones with a text tower only; see :mod:`learner.zero_shot`).

It is kept in step with the labels lazily and eagerly by one function,
:func:`ensure_zero_shot`: label writes call it (so the text encoding cost lands there and the
model history shows version 0 at once), and serving calls it too (so labels created on another
path or another replica are picked up). A fingerprint of the labels' names and descriptions tells
whether the head serving here, the stored artifact and the ``ModelVersion`` row are current;
version 0 is the one version rewritten in place (artifact overwritten, row updated with its new
digest). A version 0 artifact that is missing, or fails its digest check, is built again from the
labels rather than refused: it holds nothing the labels do not.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
from sqlmodel import Session, col, select

from embeddings import BackboneUnavailable, ImageEncoder
from learner import (
    PRESET_HEAD,
    ZERO_SHOT_HEAD,
    ArtifactCorrupt,
    ArtifactNotFound,
    Deployed,
    LabelText,
    PresetHead,
    TextPrior,
    ZeroShotHead,
    build_zero_shot_head,
)
from learner.zero_shot import CLIP_LOGIT_SCALE, TEMPLATE_SET, label_fingerprint
from service.errors import Conflict
from service.runtime import Runtime
from store import (
    Function,
    Label,
    ModelVersion,
    Sample,
    session_scope,
    shared_lock,
    utcnow,
    vector_from_bytes,
)

log = logging.getLogger("winnow.zero_shot")

ZERO_SHOT_VERSION = 0
MIN_ZERO_SHOT_LABELS = 2  # one label alone would always win with confidence 1: no signal
ZERO_SHOT_REASON = "zero-shot head from the label names: serves until a trained head beats it"


def text_encoder(rt: Runtime, function: Function) -> ImageEncoder | None:
    """The function's encoder if its backbone embeds text, else None (also when unavailable)."""
    try:
        encoder = rt.encoders.get(function.backbone)
    except (BackboneUnavailable, ValueError):
        return None
    return encoder if encoder.has_text_tower else None


def label_texts(session: Session, function_id: str) -> list[LabelText]:
    """The function's labels as zero-shot inputs, oldest first."""
    rows = session.exec(
        select(Label.name, Label.description)
        .where(Label.function_id == function_id)
        .order_by(col(Label.created_at), col(Label.name))
    ).all()
    return [LabelText(name, description) for name, description in rows]


def text_prior(rt: Runtime, function: Function) -> TextPrior | None:
    """The labels' text weights for few-shot heads (None without a text tower or labels)."""
    encoder = text_encoder(rt, function)
    if encoder is None:
        return None
    with session_scope(rt.engine) as session:
        labels = label_texts(session, function.id)
    if not labels:
        return None
    served = rt.heads.get(function.id)
    if served is not None and isinstance(served.head, PresetHead):
        prior = served.head.text_prior()  # a CLIP preset embedded its class names already
        if prior is not None and {label.name for label in labels} <= set(prior.labels):
            return prior
    fingerprint = label_fingerprint(function.backbone, labels)
    if served is not None and getattr(served.head, "fingerprint", None) == fingerprint:
        return TextPrior.of(served.head)
    head = build_zero_shot_head(encoder.encode_text, labels, backbone=function.backbone)
    return TextPrior.of(head)


def ensure_zero_shot(rt: Runtime, function: Function) -> Deployed | None:
    """Serve an up-to-date version 0 if the function should: it has no trained head deployed,
    its backbone has a text tower and it has at least two labels. Returns what serves it then,
    or None (a trained head or a preset's version 0 serves, or no zero-shot head can).

    A function left with fewer than two labels stops serving version 0.

    Args:
        rt: the runtime.
        function: the function as read moments ago.
    """
    if function.deployed_version not in (None, ZERO_SHOT_VERSION):
        return None
    encoder = text_encoder(rt, function)
    if encoder is None:
        return None
    with session_scope(rt.engine) as session:
        labels = label_texts(session, function.id)
    fingerprint = label_fingerprint(function.backbone, labels)
    served = rt.heads.get(function.id)
    if served is not None and isinstance(served.head, PresetHead):
        return None  # a preset's version 0 answers over its own classes, whatever the labels
    if (
        served is not None
        and served.version == ZERO_SHOT_VERSION
        and len(labels) >= MIN_ZERO_SHOT_LABELS
        and getattr(served.head, "fingerprint", None) == fingerprint
    ):
        return served
    with rt.deploy_locks[function.id], shared_lock(rt.engine, f"zero_shot:{function.id}"):
        return _refresh(rt, function.id, encoder)


def _refresh(rt: Runtime, function_id: str, encoder: ImageEncoder) -> Deployed | None:
    """Under the deploy locks: re-read the function and bring version 0 up to date."""
    with session_scope(rt.engine) as session:
        function = session.get(Function, function_id)
        if function is None or function.deployed_version not in (None, ZERO_SHOT_VERSION):
            return None
        labels = label_texts(session, function_id)
        row = _zero_shot_row(session, function_id)
        if row is not None and row.head == PRESET_HEAD:
            return None  # version 0 is a preset (:mod:`service.presets`), not rebuilt from labels
        if len(labels) < MIN_ZERO_SHOT_LABELS:
            _withdraw(rt, session, function, row)
            return None
        fingerprint = label_fingerprint(function.backbone, labels)
        head = _stored_head(rt, row, fingerprint) if row is not None else None
        if head is None or row is None or row.params.get("fingerprint") != fingerprint:
            head, artifact_sha256 = _build(rt, function, labels, encoder)
            row = _describe(row, function, head, artifact_sha256)
            _record(session, function, row)
        elif function.deployed_version is None:  # the row is current, but was withdrawn
            _record(session, function, row)
    rt.capture.set_label_counts(function_id, _label_counts(rt, function_id))
    deployed = Deployed.of(ZERO_SHOT_VERSION, head)
    rt.heads.swap(function_id, deployed)
    rt.serving.invalidate(function_id)
    return deployed


def rebuild_zero_shot(rt: Runtime, function: Function) -> ZeroShotHead:
    """Build version 0 again from the labels and record its new artifact's digest, for a deploy of
    version 0 whose artifact is missing or unusable (the caller holds the function's deploy lock
    and makes version 0 current).

    Raises:
        Conflict: the backbone has no text tower, or the function has fewer than two labels.
    """
    encoder = text_encoder(rt, function)
    if encoder is None:
        raise Conflict(
            f"version 0 cannot be rebuilt: backbone {function.backbone} embeds no label text"
        )
    with shared_lock(rt.engine, f"zero_shot:{function.id}"), session_scope(rt.engine) as session:
        labels = label_texts(session, function.id)
        if len(labels) < MIN_ZERO_SHOT_LABELS:
            raise Conflict(
                f"version 0 cannot be rebuilt: it needs at least {MIN_ZERO_SHOT_LABELS} labels "
                f"and function {function.id} has {len(labels)}"
            )
        head, artifact_sha256 = _build(rt, function, labels, encoder)
        session.add(
            _describe(_zero_shot_row(session, function.id), function, head, artifact_sha256)
        )
    return head


def _build(
    rt: Runtime, function: Function, labels: list[LabelText], encoder: ImageEncoder
) -> tuple[ZeroShotHead, str]:
    """Embed the label texts, fit the logit scale on any labelled samples, store the artifact;
    returns the head and the artifact's digest."""
    head = build_zero_shot_head(encoder.encode_text, labels, backbone=function.backbone)
    vectors, names = _labelled_samples(rt, function.id)
    if names:
        head.fit(vectors, names)
    meta = {"backbone": function.backbone, "labels": [label.name for label in labels]}
    meta |= {"fingerprint": head.fingerprint, "kind": ZERO_SHOT_HEAD}
    artifact_sha256 = rt.models.save(function.id, ZERO_SHOT_VERSION, head, meta, overwrite=True)
    log.info("function %s: zero-shot version 0 built for %d labels", function.id, len(labels))
    return head, artifact_sha256


def _describe(
    row: ModelVersion | None, function: Function, head: ZeroShotHead, artifact_sha256: str
) -> ModelVersion:
    """The version 0 row (a new one if None) describing ``head`` and its stored artifact."""
    if row is None:
        row = ModelVersion(function_id=function.id, version=ZERO_SHOT_VERSION, backbone="", head="")
    row.backbone = function.backbone
    row.head = ZERO_SHOT_HEAD
    row.params = {
        "fingerprint": head.fingerprint,
        "templates": TEMPLATE_SET,
        "logit_scale": head.logit_scale,
        "standard_logit_scale": CLIP_LOGIT_SCALE,
    }
    row.labels = [str(label) for label in head.classes_]
    row.metrics, row.sample_count, row.annotation_counter = {}, 0, 0
    row.train_seconds, row.parent_version, row.trigger = 0.0, None, "labels"
    row.decision = {"deploy": True, "reason": ZERO_SHOT_REASON}
    row.created_at = utcnow()
    row.artifact_sha256 = artifact_sha256
    return row


def _record(session: Session, function: Function, row: ModelVersion) -> None:
    """Make the version 0 row the function's deployed version."""
    row.status = "deployed"
    row.deployed_at = utcnow()
    function.deployed_version = ZERO_SHOT_VERSION
    session.add(row)
    session.add(function)


def _withdraw(rt: Runtime, session: Session, function: Function, row: ModelVersion | None) -> None:
    """Fewer than two labels: version 0 no longer serves (nothing does until labels return)."""
    if function.deployed_version == ZERO_SHOT_VERSION:
        function.deployed_version = None
        session.add(function)
    if row is not None and row.status == "deployed":
        row.status = "retired"
        session.add(row)
    served = rt.heads.get(function.id)
    if served is not None and served.version == ZERO_SHOT_VERSION:
        rt.heads.remove(function.id)
        rt.serving.invalidate(function.id)


def _stored_head(rt: Runtime, row: ModelVersion, fingerprint: str) -> Any:
    """The stored version 0 head if it was built from these labels (another replica built it);
    None if not, or if its artifact is missing or fails verification (it is rebuilt then)."""
    try:
        head, _meta = rt.models.load(row.function_id, row.version, sha256=row.artifact_sha256)
    except (ArtifactNotFound, ArtifactCorrupt) as exc:
        log.warning("function %s: stored version 0 not used: %s", row.function_id, exc)
        return None
    return head if getattr(head, "fingerprint", None) == fingerprint else None


def _zero_shot_row(session: Session, function_id: str) -> ModelVersion | None:
    return session.exec(
        select(ModelVersion).where(
            ModelVersion.function_id == function_id, ModelVersion.version == ZERO_SHOT_VERSION
        )
    ).first()


def _labelled_samples(rt: Runtime, function_id: str) -> tuple[np.ndarray, list[str]]:
    with session_scope(rt.engine) as session:
        rows = session.exec(
            select(Sample.embedding, Label.name)
            .join(Label, col(Sample.label_id) == Label.id)
            .where(Sample.function_id == function_id)
        ).all()
    if not rows:
        return np.zeros((0, 0), dtype=np.float32), []
    return np.stack([vector_from_bytes(r[0]) for r in rows]), [r[1] for r in rows]


def _label_counts(rt: Runtime, function_id: str) -> dict[str, int]:
    return dict(Counter(_labelled_samples(rt, function_id)[1]))


def is_zero_shot(record: ModelVersion | None) -> bool:
    """Whether a model version is a zero-shot head (version 0)."""
    return record is not None and record.head == ZERO_SHOT_HEAD


def labels_changed(rt: Runtime, function_id: str) -> None:
    """Rebuild version 0 after a label write, if it serves the function (or should now)."""
    with session_scope(rt.engine) as session:
        function = session.get(Function, function_id)
    if function is not None:
        ensure_zero_shot(rt, function)
    rt.serving.invalidate(function_id)  # label ids and names as invokes answer them

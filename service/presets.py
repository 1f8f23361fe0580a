"""Functions created from a preset: version 0 is a pretrained classifier, serving before any label.

``POST /v1/functions {"name", "preset": "imagenet"}`` makes a function whose labels are the
ImageNet classes and whose version 0 is a :class:`learner.PresetHead`: the backbone's own
1,000-way classifier (EfficientNet-Lite0), or, for a CLIP backbone, zero-shot over the class
names. ``labels`` restricts it to those classes (probabilities renormalised). From then on the
function is like any other: invokes are captured, reviewed and labelled, and a trained head
replaces version 0 only if it beats it on the labelled samples
(:func:`service.comparison.compare_with_version_zero`).

The preset is recorded in the version 0 ``ModelVersion`` row (``head`` ``preset``, ``params``
naming the preset and its source) and in its artifact's meta; a version 0 whose artifact is lost
is built again from that row (:func:`rebuild_preset`). Unlike a zero-shot version 0 it never
follows label writes: it answers over the classes it was created with.
"""

from __future__ import annotations

import logging
from typing import Any

from embeddings import BackboneUnavailable, imagenet_classifier
from learner import (
    PRESET_HEAD,
    PRESETS,
    Deployed,
    PresetHead,
    imagenet_classifier_head,
    imagenet_zero_shot_head,
)
from learner.presets import PRESET_TEMPLATES
from learner.zero_shot import CLIP_LOGIT_SCALE
from service.errors import Conflict, Unprocessable
from service.runtime import Runtime
from store import Function, Label, ModelVersion, session_scope, utcnow

log = logging.getLogger("winnow.presets")

PRESET_VERSION = 0
PRESET_REASON = "{preset} preset ({source}): serves until a trained head beats it"


def create_preset_function(
    rt: Runtime, *, name: str, spec: str, preset: str, labels: list[str]
) -> Function:
    """Create a function on backbone ``spec`` serving ``preset`` as version 0.

    Args:
        rt: the runtime.
        name: the function's name.
        spec: its canonical backbone spec.
        preset: one of :data:`learner.PRESETS`.
        labels: normalised label names to restrict the preset to (all its classes when empty).

    Raises:
        Unprocessable: an unknown preset, label names the preset lacks, fewer than two of them,
            or a backbone with neither an ImageNet classifier nor a text tower.
    """
    head, params = build_preset_head(rt, spec, preset, labels or None)
    function = Function(name=name.strip(), backbone=spec)
    meta = {"backbone": spec, "labels": list(head.classes_), "kind": PRESET_HEAD} | params
    artifact_sha256 = rt.models.save(function.id, PRESET_VERSION, head, meta)
    try:
        with session_scope(rt.engine) as session:
            session.add(function)
            session.flush()
            session.add_all(Label(function_id=function.id, name=str(c)) for c in head.classes_)
            row = _describe(function, head, params, artifact_sha256)
            row.status, row.deployed_at = "deployed", utcnow()
            function.deployed_version = PRESET_VERSION
            session.add(row)
            session.add(function)
    except BaseException:
        rt.models.delete_function(function.id)  # nothing names the artifact: leave none behind
        raise
    rt.capture.set_label_counts(function.id, {})
    rt.heads.swap(function.id, Deployed.of(PRESET_VERSION, head))
    rt.serving.invalidate(function.id)
    log.info(
        "function %s: %s preset (%s) with %d labels",
        function.id,
        preset,
        params["source"],
        len(head.classes_),
    )
    return function


def build_preset_head(
    rt: Runtime, spec: str, preset: str, labels: list[str] | None
) -> tuple[PresetHead, dict[str, Any]]:
    """The preset's head on backbone ``spec`` (restricted to ``labels`` unless None) and the
    params its model version records."""
    if preset not in PRESETS:
        raise Unprocessable(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    try:
        classifier = imagenet_classifier(spec)
    except BackboneUnavailable as exc:
        raise Unprocessable(f"the {preset} preset cannot be built: {exc}") from exc
    subset = {"subset": labels is not None}
    try:
        if classifier is not None:
            head = imagenet_classifier_head(
                classifier.weight, classifier.bias, feature_norm=classifier.feature_norm
            )
            if labels is not None:
                head = head.restricted(labels)
            params = {"preset": preset, "source": head.source}
            return head, params | {"feature_norm": classifier.feature_norm} | subset
        encoder = _text_encoder(rt, spec)
        if encoder is None:
            raise Unprocessable(
                f"backbone {spec} has neither its own ImageNet classifier nor a text tower to "
                f"classify ImageNet zero-shot; the {preset} preset needs efficientnet-lite0 or "
                "a CLIP backbone"
            )
        head = imagenet_zero_shot_head(encoder.encode_text, labels)
    except ValueError as exc:  # UnknownPresetLabels, fewer than two labels, or repeats
        raise Unprocessable(str(exc)) from exc
    params = {"preset": preset, "source": head.source, "templates": PRESET_TEMPLATES}
    return head, params | {"logit_scale": CLIP_LOGIT_SCALE} | subset


def rebuild_preset(rt: Runtime, function: Function, row: ModelVersion) -> PresetHead:
    """Build a preset's version 0 again from its row and record its new artifact's digest, for a
    deploy of version 0 whose artifact is missing or unusable (the caller holds the function's
    deploy lock and makes version 0 current).

    Raises:
        Conflict: the preset cannot be built on the function's backbone any more.
    """
    preset = str(row.params.get("preset", ""))
    labels = list(row.labels) if row.params.get("subset") else None
    try:
        head, params = build_preset_head(rt, function.backbone, preset, labels)
    except Unprocessable as exc:
        raise Conflict(f"version 0 cannot be rebuilt: {exc.message}") from exc
    meta = {"backbone": function.backbone, "labels": list(head.classes_), "kind": PRESET_HEAD}
    artifact_sha256 = rt.models.save(
        function.id, PRESET_VERSION, head, meta | params, overwrite=True
    )
    with session_scope(rt.engine) as session:
        stored = session.get(ModelVersion, row.id)
        if stored is not None:
            stored.artifact_sha256 = artifact_sha256
            session.add(stored)
    log.warning("function %s: preset version 0 rebuilt", function.id)
    return head


def is_preset(record: ModelVersion | None) -> bool:
    """Whether a model version is a preset's version 0."""
    return record is not None and record.head == PRESET_HEAD


def _describe(
    function: Function, head: PresetHead, params: dict[str, Any], artifact_sha256: str
) -> ModelVersion:
    """The version 0 row of a function created from a preset."""
    reason = PRESET_REASON.format(preset=params["preset"], source=params["source"])
    return ModelVersion(
        function_id=function.id,
        version=PRESET_VERSION,
        backbone=function.backbone,
        head=PRESET_HEAD,
        params=dict(params),
        labels=[str(label) for label in head.classes_],
        metrics={},
        sample_count=0,
        annotation_counter=0,
        train_seconds=0.0,
        parent_version=None,
        trigger="preset",
        decision={"deploy": True, "reason": reason},
        artifact_sha256=artifact_sha256,
    )


def _text_encoder(rt: Runtime, spec: str) -> Any:
    try:
        encoder = rt.encoders.get(spec)
    except (BackboneUnavailable, ValueError):
        return None
    return encoder if encoder.has_text_tower else None

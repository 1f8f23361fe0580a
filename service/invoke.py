"""Invoke: classify images with the function's deployed head (or a version asked for)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embeddings import InvalidImage
from learner import ArtifactCorrupt, ArtifactNotFound, Deployed, ranked_predictions
from service.capture import maybe_capture
from service.deploys import follow_deployed, version_row
from service.errors import Conflict, ServiceUnavailable
from service.functions import get_function, label_ids_by_name
from service.runtime import Runtime
from service.samples import embed_images
from service.schemas import InvokeResult, LabelConfidence
from service.zero_shot import ZERO_SHOT_VERSION, ensure_zero_shot
from store import Function, Sample, session_scope, vector_from_bytes


def invoke(
    rt: Runtime,
    function_id: str,
    data: bytes,
    *,
    capture: bool = True,
    version: int | None = None,
) -> InvokeResult:
    """Label ``data``; every response names the one model version that produced it.

    ``version`` asks for a version other than the deployed one (read from its artifact); such an
    answer is never captured, since capture judges the traffic the serving model sees.
    """
    (result,) = invoke_batch(rt, function_id, [data], capture=capture, version=version)
    if isinstance(result, InvalidImage):
        raise result
    return result


def invoke_batch(
    rt: Runtime,
    function_id: str,
    images: Sequence[bytes],
    *,
    capture: bool = True,
    version: int | None = None,
) -> list[InvokeResult | InvalidImage]:
    """Label each image, in order, as :func:`invoke` would one after another; an image that
    cannot be decoded is its InvalidImage and the others still answer.

    The images are embedded together (the encoder batches them) and one model version answers
    them all. Before any model exists each image answers no label (``labelName`` null) and
    cold-start capture judges it.
    """
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
        label_ids = label_ids_by_name(session, function_id)
    vectors = embed_images(rt, function, images)
    if all(isinstance(vector, InvalidImage) for vector in vectors):
        return [vector for vector in vectors if isinstance(vector, InvalidImage)]
    model = serving_model_or_none(rt, function)  # one read: it serves the whole request
    if version is not None and (model is None or version != model.version):
        model, capture = stored_model(rt, function_id, version), False
    return [
        vector
        if isinstance(vector, InvalidImage)
        else _answer(rt, function, model, label_ids, data, vector, capture=capture)
        for data, vector in zip(images, vectors, strict=True)
    ]


def _answer(
    rt: Runtime,
    function: Function,
    model: Deployed | None,
    label_ids: dict[str, str],
    data: bytes,
    vector: np.ndarray,
    *,
    capture: bool,
) -> InvokeResult:
    """``model``'s answer for one embedded image, captured into review if the policy says so."""
    if model is None:
        return _no_model_answer(rt, function, data, vector, capture=capture)
    proba = np.asarray(model.head.predict_proba(vector[None, :])[0], dtype=np.float64)
    classes = list(model.labels)
    confidences = [
        LabelConfidence(
            label_name=classes[i],
            label_id=label_ids.get(classes[i], ""),
            confidence=float(proba[i]),
        )
        for i in np.argsort(-proba, kind="stable")
    ]
    best = confidences[0]
    capture_info = None
    if capture:
        capture_info = maybe_capture(
            rt,
            function,
            data=data,
            vector=vector,
            proba=proba,
            classes=classes,
            model_version=model.version,
        )
    return InvokeResult(
        label_name=best.label_name,
        label_id=best.label_id,
        confidence=best.confidence,
        label_confidences=confidences,
        model_version=model.version,
        capture=capture_info,
    )


def _no_model_answer(
    rt: Runtime, function: Function, data: bytes, vector: np.ndarray, *, capture: bool
) -> InvokeResult:
    """No model serves the function yet: no label, and cold-start capture decides whether the
    input is one of the typical, not yet covered ones a reviewer should label first."""
    capture_info = None
    if capture:
        capture_info = maybe_capture(
            rt, function, data=data, vector=vector, proba=None, classes=[], model_version=None
        )
    return InvokeResult(
        label_name=None,
        label_id=None,
        confidence=None,
        label_confidences=[],
        model_version=None,
        capture=capture_info,
    )


def serving_model(rt: Runtime, function: Function) -> Deployed:
    """The version serving ``function`` in this process (following a deploy made elsewhere);
    409 before any model exists, 503 if the deployed artifact cannot be loaded here."""
    deployed = serving_model_or_none(rt, function)
    if deployed is None:
        raise Conflict(
            f"No model available: function {function.id} has no trained model yet; add "
            f"labelled samples of at least 2 labels and POST /v1/functions/{function.id}/train"
        )
    return deployed


def serving_model_or_none(rt: Runtime, function: Function) -> Deployed | None:
    """:func:`serving_model`, or None before any model exists (invoke's cold start)."""
    follow_deployed(rt, function)  # a version another replica deployed serves from now on
    if function.deployed_version in (None, ZERO_SHOT_VERSION):
        zero_shot = ensure_zero_shot(rt, function)  # version 0, current with the labels
        if zero_shot is not None:
            return zero_shot
    deployed = rt.heads.get(function.id)
    if deployed is None and function.deployed_version is not None:
        raise ServiceUnavailable(
            f"function {function.id} has version {function.deployed_version} deployed, but this "
            "server cannot load it (is the data dir's models/ shared?); see its log"
        )
    return deployed


def stored_model(rt: Runtime, function_id: str, version: int) -> Deployed:
    """A recorded version read from its artifact (404 if no such version, 409 if unreadable)."""
    with session_scope(rt.engine) as session:
        row = version_row(session, function_id, version)  # 404 for a version never recorded
    try:
        head, _meta = rt.models.load(function_id, version, sha256=row.artifact_sha256)
    except (ArtifactNotFound, ArtifactCorrupt) as exc:
        raise Conflict(f"version {version} cannot be served: {exc}") from exc
    return Deployed.of(version, head)


def predict_samples(
    rt: Runtime, function: Function, samples: list[Sample]
) -> list[tuple[str, float]] | None:
    """The serving version's best label and confidence for each stored sample (from its stored
    embedding, so nothing is re-embedded); None before any model is deployed."""
    if function.deployed_version is None:
        return None
    if not samples:
        return []
    model = serving_model(rt, function)
    vectors = np.stack([vector_from_bytes(s.embedding) for s in samples])
    return [ranked[0] for ranked in ranked_predictions(model.head, vectors, top_k=1)]

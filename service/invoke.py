"""Invoke: classify images with the function's deployed head (or a version asked for)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from embeddings import InvalidImage
from learner import ArtifactCorrupt, ArtifactNotFound, Deployed, ranked_predictions
from learner.finetune import TunedHead
from service.capture import maybe_capture, traffic_novelty
from service.deploys import version_row
from service.errors import Conflict, ServiceUnavailable
from service.runtime import Runtime
from service.samples import embed_images_with
from service.schemas import InvokeResult, LabelConfidence
from service.serving import Snapshot, build_snapshot, refits_due, serving_snapshot
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

    The request reads one serving snapshot (:mod:`service.serving`) from start to end: one model
    version answers every image, and nothing is fitted or loaded on its way (unless the
    function is not resident in this process: then its first invoke loads it). The images are
    embedded together (the encoder batches them). Before any model exists each image answers no
    label (``labelName`` null) and cold-start capture judges it. The head and capture then run
    once for the requests of the function answered meanwhile (an encoder batch answers several at
    once; :class:`service.combining.Combiner`).
    """
    snapshot = serving_snapshot(rt, function_id)
    model = snapshot.model
    if version is not None and (model is None or version != model.version):
        model, capture = stored_model(rt, function_id, version), False
    embedded = _embedded(rt, snapshot.function, images, model)
    if all(isinstance(row, InvalidImage) for row in embedded):
        return [row for row in embedded if isinstance(row, InvalidImage)]
    if snapshot.unavailable is not None and version is None:
        rt.serving.request(function_id, reread=True)  # the worker tries to load it again
        raise ServiceUnavailable(snapshot.unavailable)
    request = _Request(
        snapshot,
        model,
        capture,
        [
            _Image(data, row)
            for data, row in zip(images, embedded, strict=True)
            if not isinstance(row, InvalidImage)
        ],
    )
    answered = iter(rt.capture.combiner(function_id).run(request, partial(_answer_requests, rt)))
    answers = [row if isinstance(row, InvalidImage) else next(answered) for row in embedded]
    if capture and refits_due(rt, snapshot, request.images[0].vector.shape[0]):
        rt.serving.request(function_id)
    return answers


@dataclass(frozen=True)
class _Image:
    """One embedded image of a request: its bytes and its vector in the answering model's
    vector space (what the model answers from, and what capture judges and stores)."""

    data: bytes
    vector: np.ndarray


@dataclass(frozen=True)
class _Request:
    """An invoke request's embedded images, the snapshot it read and the model answering it."""

    snapshot: Snapshot
    model: Deployed | None
    capture: bool
    images: list[_Image]


def _embedded(
    rt: Runtime, function: Function, images: Sequence[bytes], model: Deployed | None
) -> list[np.ndarray | InvalidImage]:
    """Each image's vector in ``model``'s space: a version in a tuned space (a
    :class:`TunedHead`) embeds with its tail, any other with the backbone."""
    tail = model.head if model is not None and isinstance(model.head, TunedHead) else None
    return embed_images_with(rt, function, images, tail)


def _answer_requests(
    rt: Runtime, requests: Sequence[_Request]
) -> list[list[InvokeResult] | Exception]:
    """Each request's answers, or the exception it fails with. Requests that read the same
    snapshot and model (and capture or not alike) are answered together: one call of the head,
    one novelty scoring against the traffic window, then each image's capture decision."""
    groups: dict[tuple[int, int, bool], list[int]] = {}
    for i, request in enumerate(requests):
        key = (id(request.snapshot), id(request.model), request.capture)
        groups.setdefault(key, []).append(i)
    outcomes: list[list[InvokeResult] | Exception] = [[] for _ in requests]
    for members in groups.values():
        group = [requests[i] for i in members]
        try:
            answers = _answer_group(rt, group)
        except Exception as exc:
            answers = [exc] * len(group)
        for i, answer in zip(members, answers, strict=True):
            outcomes[i] = answer
    return outcomes


def _answer_group(rt: Runtime, requests: list[_Request]) -> list[list[InvokeResult] | Exception]:
    """:func:`_answer_requests` for requests of one snapshot, model and capture flag."""
    first = requests[0]
    snapshot, model, capture = first.snapshot, first.model, first.capture
    images = [image for request in requests for image in request.images]
    probabilities = _probabilities(model, images)
    novelty: list[float | None] = [None] * len(images)
    if capture:
        vectors = np.stack([image.vector for image in images])
        novelty = traffic_novelty(
            rt,
            snapshot.function.id,
            vectors,
            snapshot.novelty,
            scored=model is not None,
            space=snapshot.function.vector_space,
        )
    rows = iter(zip(images, probabilities, novelty, strict=True))
    answers: list[list[InvokeResult] | Exception] = []
    for request in requests:
        own = [next(rows) for _ in request.images]
        try:
            answers.append([_answer(rt, snapshot, model, *row, capture=capture) for row in own])
        except Exception as exc:  # this request's capture failed; the others still answer
            answers.append(exc)
    return answers


def _probabilities(model: Deployed | None, images: list[_Image]) -> list[np.ndarray | None]:
    """``model``'s class probabilities for each image, from one call of its head; None each
    before any model."""
    if model is None:
        return [None] * len(images)
    rows = model.head.predict_proba(np.stack([image.vector for image in images]))
    return list(np.asarray(rows, dtype=np.float64))


def _answer(
    rt: Runtime,
    snapshot: Snapshot,
    model: Deployed | None,
    image: _Image,
    proba: np.ndarray | None,
    novelty: float | None,
    *,
    capture: bool,
) -> InvokeResult:
    """``model``'s answer for one embedded image (``proba``: its probabilities, None before any
    model), captured into review if the policy says so; before any model, no label, and
    cold-start capture decides whether the input is one of the typical, not yet covered ones a
    reviewer should label first."""
    if model is None or proba is None:
        classes: list[str] = []
        confidences: list[LabelConfidence] = []
    else:
        classes = list(model.labels)
        confidences = [
            LabelConfidence(
                label_name=classes[i],
                label_id=snapshot.label_ids.get(classes[i], ""),
                confidence=float(proba[i]),
            )
            for i in np.argsort(-proba, kind="stable")
        ]
    capture_info = None
    if capture:
        capture_info = maybe_capture(
            rt,
            snapshot.function.id,
            snapshot.controller,
            data=image.data,
            vector=image.vector,
            proba=proba,
            classes=classes,
            model_version=None if model is None else model.version,
            label_counts=snapshot.label_counts,
            novelty=novelty,
            space=snapshot.function.vector_space,
        )
    best = confidences[0] if confidences else None
    return InvokeResult(
        label_name=best.label_name if best else None,
        label_id=best.label_id if best else None,
        confidence=best.confidence if best else None,
        label_confidences=confidences,
        model_version=None if model is None else model.version,
        capture=capture_info,
    )


def serving_model(rt: Runtime, function_id: str, *, deployed: int | None = None) -> Deployed:
    """The version serving the function in this process; 409 before any model exists, 503 if
    the deployed artifact cannot be loaded here. ``deployed``: the version a row the caller
    just read names; a snapshot built from an older row is rebuilt first (the paths that read
    the row anyway, unlike invoke, need not wait for the worker's poll)."""
    snapshot = serving_snapshot(rt, function_id)
    if deployed is not None and snapshot.function.deployed_version != deployed:
        snapshot = build_snapshot(rt, function_id)
    if snapshot.unavailable is not None:
        raise ServiceUnavailable(snapshot.unavailable)
    if snapshot.model is None:
        raise Conflict(
            f"No model available: function {function_id} has no trained model yet; add "
            f"labelled samples of at least 2 labels and POST /v1/functions/{function_id}/train"
        )
    return snapshot.model


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
    model = serving_model(rt, function.id, deployed=function.deployed_version)
    vectors = np.stack([vector_from_bytes(s.embedding) for s in samples])
    return [ranked[0] for ranked in ranked_predictions(model.head, vectors, top_k=1)]

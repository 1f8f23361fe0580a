"""Nyckel requests translated into winnow's use cases (``api.services``), and back.

Ids: winnow's ids already carry Nyckel's ``<kind>_<id>`` shape; the SDK strips the prefix and
sends bare ids back, so every id read from a path goes through :func:`full_id`.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from api.inputs import resolve_data
from api.nyckel import protocol as wire
from service import functions, samples, training
from service.auth import Principal
from service.errors import Conflict, Unauthorized, Unprocessable
from service.invoke import invoke as invoke_service
from service.invoke import predict_samples
from service.runtime import Runtime
from store import Function, Label, LabelChange, Sample, session_scope

# The access token is the API key itself (no second secret store): it stops working when the
# key is deleted. The SDK renews ten minutes before this.
TOKEN_LIFETIME_S = 24 * 3600

ImageUrl = Callable[[Sample], str]


def full_id(kind: str, raw: str) -> str:
    """``abc`` or ``kind_abc`` -> ``kind_abc`` (the SDK strips prefixes)."""
    return raw if raw.startswith(f"{kind}_") else f"{kind}_{raw}"


def exchange_token(principal: Principal, client_id: str, client_secret: str) -> wire.Token:
    """OAuth2 client credentials: client_id is the key's id, client_secret the key (already
    verified into ``principal``); the token is the key itself."""
    if full_id("key", client_id.strip()) != principal.key_id:
        raise Unauthorized("client_id does not name the key sent as client_secret")
    return wire.Token(access_token=client_secret, expires_in=TOKEN_LIFETIME_S)


def _change(caller: Principal) -> LabelChange:
    """How the label history records a change through the adapter: the key's reviewer (or name,
    or id), via ``nyckel`` (Nyckel's API names nobody else)."""
    return LabelChange((caller.actor(),), "nyckel")


# functions ---------------------------------------------------------------------------------------


def _function(function: Function) -> wire.Function:
    return wire.Function(id=function.id, name=function.name)


def create_function(rt: Runtime, body: wire.FunctionCreate) -> wire.Function:
    return _function(functions.create_function(rt, name=body.name, labels=[], backbone=None))


def list_functions(rt: Runtime, caller: Principal) -> list[wire.Function]:
    with session_scope(rt.engine) as session:
        return [_function(f) for f in functions.visible_functions(session, caller.function_id)]


def read_function(rt: Runtime, function_id: str) -> wire.Function:
    with session_scope(rt.engine) as session:
        return _function(functions.get_function(session, function_id))


def function_state(rt: Runtime, function_id: str) -> wire.FunctionState:
    with session_scope(rt.engine) as session:
        function = functions.get_function(session, function_id)
    return wire.FunctionState(
        id=function.id,
        name=function.name,
        state="Annotating" if function.deployed_version is None else "Tuning",
    )


def function_metrics(rt: Runtime, function_id: str) -> wire.FunctionMetrics:
    with session_scope(rt.engine) as session:
        function = functions.get_function(session, function_id)
        counts = samples.sample_counts(session, function_id)
    return wire.FunctionMetrics(
        sample_count=counts.total,
        annotated_sample_count=counts.annotated,
        annotated_label_counts=counts.by_label,
        prediction_count=0 if function.deployed_version is None else counts.total,
        is_training=training.is_training(rt, function_id),
    )


# labels ------------------------------------------------------------------------------------------


def _label(label: Label) -> wire.Label:
    return wire.Label(id=label.id, name=label.name, description=label.description)


def create_label(rt: Runtime, function_id: str, body: wire.LabelCreate) -> wire.Label:
    with session_scope(rt.engine) as session:
        functions.get_function(session, function_id)
        label = functions.create_label(
            session, function_id, name=body.name, description=body.description
        )
        return _label(label)


def list_labels(rt: Runtime, function_id: str) -> list[wire.Label]:
    with session_scope(rt.engine) as session:
        return [_label(label) for label in functions.list_labels(session, function_id)]


def read_label(rt: Runtime, function_id: str, label_id: str) -> wire.Label:
    with session_scope(rt.engine) as session:
        return _label(functions.get_label(session, function_id, label_id))


def update_label(
    rt: Runtime, function_id: str, label_id: str, body: wire.LabelCreate
) -> wire.Label:
    label = functions.update_label(
        rt, function_id, label_id, name=body.name, description=body.description
    )
    return _label(label)


# samples -----------------------------------------------------------------------------------------


def _label_name(rt: Runtime, function_id: str, annotation: wire.AnnotationIn) -> str:
    if annotation.label_name is not None:
        return annotation.label_name
    label_id = full_id("label", annotation.label_id or "")  # the model requires one of the two
    with session_scope(rt.engine) as session:
        return functions.get_label(session, function_id, label_id).name


def _samples(
    rt: Runtime, function: Function, rows: list[Sample], image_url: ImageUrl
) -> list[wire.Sample]:
    predictions = predict_samples(rt, function, rows)
    with session_scope(rt.engine) as session:
        label_ids = functions.label_ids_by_name(session, function.id)
    out = []
    for i, sample in enumerate(rows):
        prediction = None
        if predictions is not None:
            name, confidence = predictions[i]
            prediction = wire.Prediction(label_id=label_ids.get(name, ""), confidence=confidence)
        annotation = wire.AnnotationOut(label_id=sample.label_id) if sample.label_id else None
        out.append(
            wire.Sample(
                id=sample.id,
                data=image_url(sample),
                external_id=sample.external_id,
                annotation=annotation,
                prediction=prediction,
            )
        )
    return out


def _one_sample(rt: Runtime, function_id: str, sample: Sample, image_url: ImageUrl) -> wire.Sample:
    with session_scope(rt.engine) as session:
        function = functions.get_function(session, function_id)
    return _samples(rt, function, [sample], image_url)[0]


async def create_sample(
    rt: Runtime, function_id: str, body: wire.SampleCreate, image_url: ImageUrl, caller: Principal
) -> wire.Sample | wire.DuplicateSample:
    """Nyckel's duplicate rule: an externalId or an image the function already holds answers
    409 with the existing sample's id (the SDK counts that as created). A labelled sample asks
    for a training, as Nyckel trains by itself."""
    data = await resolve_data(body.data, rt.settings)
    label_name = _label_name(rt, function_id, body.annotation) if body.annotation else None
    try:
        sample, created = await run_in_threadpool(
            samples.add_sample,
            rt,
            function_id,
            data=data,
            label_name=label_name,
            external_id=body.external_id,
            change=_change(caller),
            reuse_image=True,
        )
    except Conflict as exc:  # the externalId names another image or label
        existing = _by_external_id(rt, function_id, body.external_id)
        if existing is None:
            raise
        return wire.DuplicateSample(message=exc.message, existing_sample_id=existing.id)
    if not created:
        return wire.DuplicateSample(
            message=f"function {function_id} already holds this sample",
            existing_sample_id=sample.id,
        )
    if label_name is not None:
        training.request_training(rt, function_id)
    return await run_in_threadpool(_one_sample, rt, function_id, sample, image_url)


def _by_external_id(rt: Runtime, function_id: str, external_id: str | None) -> Sample | None:
    if external_id is None:
        return None
    with session_scope(rt.engine) as session:
        return session.exec(
            select(Sample).where(
                Sample.function_id == function_id, Sample.external_id == external_id
            )
        ).first()


def list_samples(
    rt: Runtime,
    function_id: str,
    *,
    offset: int,
    batch_size: int,
    newest_first: bool,
    image_url: ImageUrl,
) -> tuple[list[wire.Sample], bool]:
    """A page of samples and whether another page follows."""
    with session_scope(rt.engine) as session:
        function = functions.get_function(session, function_id)
        rows, total = samples.list_samples(
            session,
            function_id,
            annotated=None,
            start=offset,
            count=batch_size,
            newest_first=newest_first,
        )
    page = _samples(rt, function, [sample for sample, _ in rows], image_url)
    return page, offset + len(rows) < total


def read_sample(rt: Runtime, function_id: str, sample_id: str, image_url: ImageUrl) -> wire.Sample:
    with session_scope(rt.engine) as session:
        sample = samples.get_sample(session, function_id, sample_id)
    return _one_sample(rt, function_id, sample, image_url)


def delete_sample(rt: Runtime, function_id: str, sample_id: str, caller: Principal) -> None:
    if samples.delete_sample(rt, function_id, sample_id, _change(caller)).label_id is not None:
        training.request_training(rt, function_id)


def set_annotation(
    rt: Runtime,
    function_id: str,
    sample_id: str,
    body: wire.AnnotationIn,
    image_url: ImageUrl,
    caller: Principal,
) -> wire.Sample:
    name = _label_name(rt, function_id, body)
    sample = samples.set_annotation(rt, function_id, sample_id, name, _change(caller))
    training.request_training(rt, function_id)
    return _one_sample(rt, function_id, sample, image_url)


def remove_annotation(
    rt: Runtime, function_id: str, sample_id: str, image_url: ImageUrl, caller: Principal
) -> wire.Sample:
    sample = samples.remove_annotation(rt, function_id, sample_id, _change(caller))
    training.request_training(rt, function_id)
    return _one_sample(rt, function_id, sample, image_url)


# invoke ------------------------------------------------------------------------------------------


def model_version(model_id: str | None) -> int | None:
    """Nyckel's ``modelId`` is a winnow model version number here; empty: the deployed one."""
    if not model_id:
        return None
    try:
        version = int(model_id.strip())
    except ValueError:
        version = 0
    if not 1 <= version < 2**31:
        raise Unprocessable(
            f"modelId {model_id!r} is not a model version: send a version number from "
            "GET /v1/functions/{id}/models, or leave it empty for the deployed version"
        )
    return version


async def invoke(
    rt: Runtime, function_id: str, body: wire.InvokeIn, model_id: str | None
) -> wire.InvokeOut:
    version = model_version(model_id)
    data = await resolve_data(body.data, rt.settings)
    result = await run_in_threadpool(invoke_service, rt, function_id, data, version=version)
    if result.label_name is None or result.label_id is None or result.confidence is None:
        # Nyckel answers 409 before a model exists; winnow's own invoke answers 200 with no label.
        # The input was still judged by cold-start capture, so Nyckel traffic fills the queue too.
        raise Conflict(
            f"No model available: function {function_id} has no trained model yet; label "
            "samples of at least 2 labels (or its review queue) and train"
        )
    return wire.InvokeOut(
        label_name=result.label_name, label_id=result.label_id, confidence=result.confidence
    )

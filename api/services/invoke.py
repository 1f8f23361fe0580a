"""Invoke: classify one image with the function's deployed head."""

from __future__ import annotations

import numpy as np
from sqlmodel import select

from api.errors import Conflict, ServiceUnavailable
from api.runtime import Runtime
from api.schemas import InvokeResult, LabelConfidence
from api.services.capture import maybe_capture
from api.services.functions import get_function
from api.services.samples import embed_image
from api.services.training import follow_deployed
from store import Label, session_scope


def invoke(rt: Runtime, function_id: str, data: bytes, *, capture: bool = True) -> InvokeResult:
    """Label ``data``; every response names the one model version that produced it."""
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
        label_ids = {
            label.name: label.id
            for label in session.exec(select(Label).where(Label.function_id == function_id))
        }
    vector = embed_image(rt, function, data)
    follow_deployed(rt, function)  # a version another replica deployed serves from now on
    deployed = rt.heads.get(function_id)  # one read: this version serves the whole request
    if deployed is None and function.deployed_version is not None:
        raise ServiceUnavailable(
            f"function {function_id} has version {function.deployed_version} deployed, but this "
            "server cannot load it (is the data dir's models/ shared?); see its log"
        )
    if deployed is None:
        raise Conflict(
            f"function {function_id} has no trained model yet: add labelled samples and "
            f"POST /v1/functions/{function_id}/train"
        )
    proba = np.asarray(deployed.head.predict_proba(vector[None, :])[0], dtype=np.float64)
    classes = [str(c) for c in deployed.head.classes_]
    order = np.argsort(-proba, kind="stable")
    confidences = [
        LabelConfidence(
            label_name=classes[i],
            label_id=label_ids.get(classes[i], ""),
            confidence=float(proba[i]),
        )
        for i in order
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
            model_version=deployed.version,
        )
    return InvokeResult(
        label_name=best.label_name,
        label_id=best.label_id,
        confidence=best.confidence,
        label_confidences=confidences,
        model_version=deployed.version,
        capture=capture_info,
    )

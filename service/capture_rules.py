"""Capture rules at policy-set time: resolve each rule's examples (or text) to vectors once.

A rule names sample or review item ids of its function (or, on a backbone with a text tower, a
description). Their vectors are read here, when the policy is set, and stored with the rule, so a
later invoke never reads the examples again and deleting one does not break or change the rule.
A rule unchanged from the stored policy keeps its stored vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlmodel import Session, col, select

from capture import CapturePolicy, InvalidPolicy
from capture.rules import CaptureRule
from embeddings.errors import TextNotSupported
from service.runtime import Runtime
from store import Function, ReviewItem, Sample, vector_from_bytes


def resolve_rules(
    rt: Runtime,
    session: Session,
    function: Function,
    policy: CapturePolicy,
    previous: CapturePolicy,
) -> CapturePolicy:
    """``policy`` with every rule's vectors resolved.

    Raises:
        InvalidPolicy (422): an example id that is not a sample or review item of this function,
            or a text rule on a backbone without a text tower.
    """
    stored = {(r.name, r.examples, r.text): r.vectors for r in previous.rules if r.vectors}
    rules = []
    for rule in policy.rules:
        vectors = stored.get((rule.name, rule.examples, rule.text))
        if vectors is not None:
            rules.append(CaptureRule(rule.name, rule.examples, rule.text, rule.similarity, vectors))
        elif rule.text is not None:
            rules.append(rule.with_vectors(_text_vector(rt, function, rule)))
        else:
            rules.append(rule.with_vectors(_example_vectors(session, function, rule)))
    return CapturePolicy.from_dict({**policy.to_dict(), "rules": rules})


def _example_vectors(session: Session, function: Function, rule: CaptureRule) -> np.ndarray:
    found = example_embeddings(session, function.id, rule.examples)
    missing = [example for example in rule.examples if example not in found]
    if missing:
        raise InvalidPolicy(
            f"capture rule {rule.name!r}: no sample or review item {', '.join(missing)} in "
            f"function {function.id}"
        )
    return np.stack([vector_from_bytes(found[example]) for example in rule.examples])


def example_embeddings(
    session: Session, function_id: str, examples: Sequence[str]
) -> dict[str, bytes]:
    """The stored embedding of each of ``examples`` (sample or review item ids) the function
    still has."""
    found = dict(
        session.exec(
            select(Sample.id, Sample.embedding).where(
                Sample.function_id == function_id, col(Sample.id).in_(list(examples))
            )
        ).all()
    )
    found.update(
        session.exec(
            select(ReviewItem.id, ReviewItem.embedding).where(
                ReviewItem.function_id == function_id, col(ReviewItem.id).in_(list(examples))
            )
        ).all()
    )
    return found


def _text_vector(rt: Runtime, function: Function, rule: CaptureRule) -> np.ndarray:
    encoder = rt.encoders.get(function.backbone)
    try:
        if not encoder.has_text_tower:
            raise TextNotSupported("no text tower")
        return encoder.encode_text([str(rule.text)])
    except TextNotSupported:
        raise InvalidPolicy(
            f"capture rule {rule.name!r}: this backbone has no text tower ({function.backbone}); "
            "give examples (sample or review item ids) instead of text"
        ) from None

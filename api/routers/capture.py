"""A function's capture policy: read it with live status, change it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic.alias_generators import to_camel, to_snake

from api.deps import AdminKey, RuntimeDep
from capture import CapturePolicy
from service.capture_rules import resolve_rules
from service.functions import get_function
from service.schemas import CapturePolicyBody, CapturePolicyPublic
from store import lock_space, session_scope

router = APIRouter(prefix="/v1/functions/{function_id}/capture-policy", tags=["capture"])


def _public(rt: RuntimeDep, function: Any, policy: CapturePolicy) -> CapturePolicyPublic:
    controller = rt.capture.controller(function)  # applies the stored policy
    controller.set_committed_captures(rt.captures_in_last_day(function.id))  # every process's
    status = controller.status()
    return CapturePolicyPublic(
        policy={to_camel(k): v for k, v in policy.public_dict().items()},
        status={to_camel(k): v for k, v in status.items()},
    )


@router.get("")
def get_policy(function_id: str, rt: RuntimeDep, _: AdminKey) -> CapturePolicyPublic:
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
    return _public(rt, function, CapturePolicy.from_dict(function.capture_policy or {}))


@router.put("")
def put_policy(
    function_id: str, body: CapturePolicyBody, rt: RuntimeDep, _: AdminKey
) -> CapturePolicyPublic:
    """Change some settings (camelCase); the rest keep their values. Invalid values are a 422.

    ``rules`` replaces the whole list; each rule's examples (or text) are resolved to vectors
    now, so an unknown id or a text rule without a text tower is a 422."""
    with session_scope(rt.engine) as session:
        function = get_function(session, function_id)
        lock_space(session, function_id)  # the rules copy vectors: none from before a move
        session.refresh(function)
        stored = CapturePolicy.from_dict(function.capture_policy or {})
        changes = {to_snake(k): v for k, v in (body.model_extra or {}).items()}
        policy = CapturePolicy.from_dict({**stored.to_dict(), **changes})
        policy = resolve_rules(rt, session, function, policy, previous=stored)
        function.capture_policy = policy.to_dict()
        session.add(function)
    rt.serving.invalidate(function_id)
    return _public(rt, function, policy)

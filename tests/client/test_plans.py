"""The operations of several calls are plans written once (winnow_client.plans): stepped here by
hand with no I/O, and run by both clients against httpx.MockTransport, errors included."""

import asyncio
from typing import Any

import httpx
import pytest
from winnow_client import AsyncClient, Client, Function, Label, NotFound, Page, Sample
from winnow_client import TrainingStatus as Status
from winnow_client.calls import Call
from winnow_client.plans import Pause, Plan, ensure_function, sample_page, wait_for_training


def step_through(plan: Plan[Any], answers: list[Any]) -> tuple[list[str], Any]:
    """Run ``plan`` answering its steps with ``answers`` in turn; the steps (``METHOD path`` or
    ``pause``) and the plan's result."""
    steps: list[str] = []
    answer: Any = None
    while True:
        try:
            step = plan.send(answer)
        except StopIteration as done:
            return steps, done.value
        steps.append("pause" if isinstance(step, Pause) else f"{step.method} {step.path}")
        answer = answers.pop(0) if isinstance(step, Call) else None


def test_ensure_function_creates_only_the_missing_labels_of_the_oldest_namesake() -> None:
    namesakes = [Function("f1", "pets"), Function("f2", "pets"), Function("f3", "cars")]
    plan = ensure_function("pets", ["cat", "dog", "cat"])
    steps, result = step_through(
        plan, [namesakes, [Label("l1", "cat")], Label("l2", "dog"), Function("f1", "pets")]
    )
    assert steps == [
        "GET /v1/functions",
        "GET /v1/functions/f1/labels",
        "POST /v1/functions/f1/labels",
        "GET /v1/functions/f1",
    ]
    assert result == Function("f1", "pets")


def test_ensure_function_creates_a_missing_function_with_its_labels_and_backbone() -> None:
    plan = ensure_function("pets", iter(["cat"]), backbone="tiny")
    created = Function("f9", "pets", backbone="tiny")
    first = plan.send(None)
    assert isinstance(first, Call) and first.path == "/v1/functions"
    second = plan.send([Function("f3", "cars")])
    assert isinstance(second, Call)
    assert second.json == {"name": "pets", "labels": ["cat"], "backbone": "tiny"}
    with pytest.raises(StopIteration) as done:
        plan.send(created)
    assert done.value.value is created


def test_wait_for_training_pauses_until_a_run_ends_after_previous() -> None:
    queued = Status("idle", finished_at=None)
    still = Status("training")
    ended = Status("idle", finished_at="2025-01-01T00:00:00Z")  # type: ignore[arg-type]
    plan = wait_for_training("f1", previous=queued, interval=0.25)
    steps, result = step_through(plan, [queued, still, ended])
    poll = "GET /v1/functions/f1/training"
    assert steps == [poll, "pause", poll, "pause", poll]
    assert result is ended


def test_wait_for_training_past_its_timeout_raises_naming_the_state() -> None:
    plan = wait_for_training("f1", timeout=0.0)
    plan.send(None)
    with pytest.raises(TimeoutError, match=r"training of f1 still not finished \(training\)"):
        plan.send(Status("training"))


@pytest.mark.parametrize(
    ("start", "body", "expected_next"),
    [
        (0, {"data": [{"id": "s1", "functionId": "f"}], "count": 3}, 1),
        (2, {"data": [{"id": "s3", "functionId": "f"}], "count": 3}, None),  # the last page
        (0, {"data": [], "count": 5}, None),  # samples deleted meanwhile: no endless paging
    ],
)
def test_sample_page_says_where_the_next_page_starts(
    start: int, body: dict[str, Any], expected_next: int | None
) -> None:
    call = sample_page("f", start, annotated=True, page_size=1)
    assert call.params == {"startIndex": start, "count": 1, "annotated": "true"}
    samples, next_start = call.parse(body)
    assert [s.id for s in samples] == [s["id"] for s in body["data"]]
    assert next_start == expected_next


def test_a_call_returning_a_page_is_chained_by_then() -> None:
    call: Call[Page[Sample]] = Call("GET", "/x", lambda body: Page([], body["count"]))
    assert call.then(lambda page: page.count + 1).parse({"count": 2}) == 3


# both clients run the same plans ----------------------------------------------------------------


def service(request: httpx.Request) -> httpx.Response:
    """Function f1 "pets" with label cat; its labels answer 404 to requests marked ``x-gone``
    (the function deleted between two calls of a plan)."""
    routes: dict[tuple[str, str], Any] = {
        ("GET", "/v1/functions"): {"data": [{"id": "f1", "name": "pets"}], "count": 1},
        ("GET", "/v1/functions/f1/labels"): {"data": [{"id": "l1", "name": "cat"}], "count": 1},
        ("POST", "/v1/functions/f1/labels"): {"id": "l2", "name": "dog"},
        ("GET", "/v1/functions/f1"): {"id": "f1", "name": "pets", "labelCount": 2},
    }
    key = (request.method, request.url.path)
    if key not in routes or ("labels" in key[1] and request.headers.get("x-gone")):
        return httpx.Response(404, json={"message": f"no {request.url.path}"})
    return httpx.Response(200, json=routes[key])


def test_both_clients_run_ensure_function_to_the_same_result() -> None:
    sent: list[str] = []

    def recording(request: httpx.Request) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path}")
        return service(request)

    transport = httpx.MockTransport(recording)
    with Client(http=httpx.Client(base_url="http://w", transport=transport)) as winnow:
        blocking = winnow.ensure_function("pets", ["cat", "dog"])

    async def main() -> Function:
        http = httpx.AsyncClient(base_url="http://w", transport=transport)
        async with AsyncClient(http=http) as winnow:
            return await winnow.ensure_function("pets", ["cat", "dog"])

    assert asyncio.run(main()) == blocking == Function("f1", "pets", label_count=2)
    assert sent[: len(sent) // 2] == sent[len(sent) // 2 :]
    assert sent.count("POST /v1/functions/f1/labels") == 2  # dog, once per client


def test_an_error_answer_stops_the_plan_in_both_clients() -> None:
    transport = httpx.MockTransport(service)
    headers = {"x-gone": "1"}
    http = httpx.Client(base_url="http://w", transport=transport, headers=headers)
    with Client(http=http) as winnow, pytest.raises(NotFound, match="no /v1/functions/f1/labels"):
        winnow.ensure_function("pets", ["dog"])

    async def main() -> None:
        http = httpx.AsyncClient(base_url="http://w", transport=transport, headers=headers)
        async with AsyncClient(http=http) as winnow:
            await winnow.ensure_function("pets", ["dog"])

    with pytest.raises(NotFound, match="no /v1/functions/f1/labels"):
        asyncio.run(main())

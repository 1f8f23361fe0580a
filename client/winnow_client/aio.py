"""``AsyncClient``: the same surface as ``Client`` for asyncio apps (httpx.AsyncClient). Requests
and parsing come from :mod:`winnow_client.calls`, the operations of several calls from
:mod:`winnow_client.plans`, retry rules from :mod:`winnow_client.transport`; only the sending,
running plans and the bounded concurrency (a semaphore) are async here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from itertools import count
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx
from tqdm.auto import tqdm

from winnow_client import plans
from winnow_client.bulk import (
    SampleUpload,
    batches,
    is_item_failure,
    item_label,
    pending_uploads,
)
from winnow_client.calls import Call, functions, keys, review, samples, training
from winnow_client.errors import PayloadTooLarge, WinnowError, error_from_response
from winnow_client.images import ImageLike
from winnow_client.models import Prediction, Sample, UploadReport
from winnow_client.plans import Pause, Plan
from winnow_client.transport import (
    RETRYABLE_TRANSPORT_ERRORS,
    RetryPolicy,
    auth_headers,
    read_response,
    request_arguments,
)

P = ParamSpec("P")
T = TypeVar("T")


def endpoint(
    build: Callable[P, Call[T] | Plan[T]],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]:
    """An async client method that sends the call (or runs the plan) ``build`` makes."""

    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        # Building a call may read and base64-encode a file: off the event loop.
        work = await asyncio.to_thread(build, *args, **kwargs)
        return await self.drive(work)

    method.__name__ = method.__qualname__ = build.__name__
    method.__doc__ = build.__doc__
    return method


class AsyncClient:
    """Talks to one winnow service from asyncio code; arguments as :class:`Client`."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._http = http or httpx.AsyncClient(base_url=url, timeout=timeout)
        self._http.headers.update(auth_headers(api_key))
        self.retry = retry or RetryPolicy()
        self._sleep = sleep

    async def run(self, call: Call[T]) -> T:
        """Send a call, retrying as :attr:`retry` allows; return its result or raise."""
        waited = 0.0
        for attempt in count():
            try:
                response = await self._http.request(**request_arguments(call))
            except RETRYABLE_TRANSPORT_ERRORS:
                delay = self.retry.delay(attempt, waited, None)
                if delay is None:
                    raise
            else:
                if response.status_code < 400:
                    return read_response(call, response)
                delay = self.retry.delay(attempt, waited, response)
                if delay is None:
                    raise error_from_response(response)
            await self._sleep(delay)
            waited += delay
        raise AssertionError("unreachable")  # pragma: no cover

    async def drive(self, work: Call[T] | Plan[T]) -> T:
        """Send a call, or run a plan: send each call it yields, wait out each pause."""
        if isinstance(work, Call):
            return await self.run(work)
        answer: Any = None
        while True:
            try:
                step = work.send(answer)
            except StopIteration as done:
                return done.value
            if isinstance(step, Pause):
                answer = None
                await asyncio.sleep(step.seconds)
            else:
                answer = await self.run(step)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # the API, one line per operation (see winnow_client.calls and .plans) ---------------------

    create_function = endpoint(functions.create_function)
    list_functions = endpoint(functions.list_functions)
    get_function = endpoint(functions.get_function)
    delete_function = endpoint(functions.delete_function)
    create_label = endpoint(functions.create_label)
    list_labels = endpoint(functions.list_labels)
    get_label = endpoint(functions.get_label)
    update_label = endpoint(functions.update_label)
    delete_label = endpoint(functions.delete_label)
    create_sample = endpoint(samples.create_sample)
    list_samples = endpoint(samples.list_samples)
    get_sample = endpoint(samples.get_sample)
    sample_image = endpoint(samples.sample_image)
    set_annotation = endpoint(samples.set_annotation)
    remove_annotation = endpoint(samples.remove_annotation)
    delete_sample = endpoint(samples.delete_sample)
    sample_history = endpoint(samples.sample_history)
    search = endpoint(samples.search)
    similar_samples = endpoint(samples.similar_samples)
    train = endpoint(training.train)
    request_training = endpoint(training.request_training)
    training_status = endpoint(training.training_status)
    list_models = endpoint(training.list_models)
    deploy = endpoint(training.deploy)
    pin = endpoint(training.pin)
    unpin = endpoint(training.unpin)
    metrics = endpoint(training.metrics)
    confusion_matrix_png = endpoint(training.confusion_matrix_png)
    export_model = endpoint(training.export_model)
    invoke = endpoint(training.invoke)
    invoke_batch = endpoint(training.invoke_batch)
    review_items = endpoint(review.review_items)
    review_counts = endpoint(review.review_counts)
    claim_review = endpoint(review.claim_review)
    release_review = endpoint(review.release_review)
    reviewers = endpoint(review.reviewers)
    annotate = endpoint(review.annotate)
    annotate_many = endpoint(review.annotate_many)
    skip = endpoint(review.skip)
    discard = endpoint(review.discard)
    mark_novel = endpoint(review.mark_novel)
    proposals = endpoint(review.proposals)
    accept_proposal = endpoint(review.accept_proposal)
    dismiss_proposal = endpoint(review.dismiss_proposal)
    review_image = endpoint(review.review_image)
    similar_to_item = endpoint(review.similar_to_item)
    capture_policy = endpoint(review.capture_policy)
    set_capture_policy = endpoint(review.set_capture_policy)
    dashboard = endpoint(review.dashboard)
    chart_png = endpoint(review.chart_png)
    create_key = endpoint(keys.create_key)
    list_keys = endpoint(keys.list_keys)
    delete_key = endpoint(keys.delete_key)
    health = endpoint(keys.health)
    find_function = endpoint(plans.find_function)
    ensure_function = endpoint(plans.ensure_function)
    wait_for_training = endpoint(plans.wait_for_training)

    # helpers over several calls -----------------------------------------------------------------

    async def iter_samples(
        self, function_id: str, *, annotated: bool | None = None, page_size: int = 1000
    ) -> AsyncIterator[Sample]:
        """Every sample, oldest first, a page at a time."""
        start: int | None = 0
        while start is not None:
            page = plans.sample_page(function_id, start, annotated=annotated, page_size=page_size)
            sample_list, start = await self.run(page)
            for sample in sample_list:
                yield sample

    async def upload_samples(
        self,
        function_id: str,
        items: Iterable[SampleUpload | tuple[ImageLike, str | None]],
        *,
        concurrency: int = 4,
        progress: bool = True,
        via: str | None = None,
    ) -> UploadReport:
        """As :meth:`Client.upload_samples`, ``concurrency`` requests in flight."""
        present = {s.external_id async for s in self.iter_samples(function_id) if s.external_id}
        todo, skipped = pending_uploads(items, present)
        report = UploadReport(skipped=skipped)
        queue = iter(enumerate(todo))  # shared by the workers: each item is taken once

        async def worker() -> None:
            for index, item in queue:
                try:
                    report.created.append(
                        await self.create_sample(
                            function_id,
                            item.image,
                            item.label,
                            external_id=item.external_id,
                            annotated_by=item.annotated_by,
                            via=via,
                        )
                    )
                except Exception as exc:
                    if not is_item_failure(exc):
                        raise
                    report.failed.append((item_label(item, index), exc))
                bar.update(1)

        with tqdm(total=len(todo), desc="upload", unit="img", disable=not progress) as bar:
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(max(1, concurrency)):
                        group.create_task(worker())
            except BaseExceptionGroup as failed:  # the first error that stopped the upload
                raise failed.exceptions[0] from None
        return report

    async def invoke_many(
        self,
        function_id: str,
        images: Sequence[ImageLike],
        *,
        batch_size: int = 16,
        concurrency: int = 4,
        capture: bool = False,
        progress: bool = False,
    ) -> list[Prediction | WinnowError]:
        """As :meth:`Client.invoke_many`, ``concurrency`` batches in flight."""
        limit = asyncio.Semaphore(max(1, concurrency))

        async def invoke(chunk: Sequence[ImageLike]) -> list[Prediction | WinnowError]:
            try:
                async with limit:
                    answers = await self.invoke_batch(function_id, chunk, capture=capture)
            except PayloadTooLarge as exc:  # too many bytes or images: halve the batch
                if len(chunk) > 1:
                    half = len(chunk) // 2
                    return await invoke(chunk[:half]) + await invoke(chunk[half:])
                answers = [exc]
            bar.update(len(chunk))
            return answers

        with tqdm(total=len(images), desc="invoke", unit="img", disable=not progress) as bar:
            results = await asyncio.gather(*(invoke(c) for c in batches(images, batch_size)))
        return [answer for answers in results for answer in answers]

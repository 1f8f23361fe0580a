"""``Client``: the blocking client. Every API operation comes from :mod:`winnow_client.calls` and
the operations of several calls from :mod:`winnow_client.plans`; this module adds sending with
retries, running plans, and the bulk helpers (threads for bounded concurrency)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
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


def endpoint(build: Callable[P, Call[T] | Plan[T]]) -> Callable[Concatenate[Client, P], T]:
    """A client method that sends the call (or runs the plan) ``build`` makes and returns its
    result."""

    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.drive(build(*args, **kwargs))

    method.__name__ = method.__qualname__ = build.__name__
    method.__doc__ = build.__doc__
    return method


class Client:
    """Talks to one winnow service.

    Args:
        url: base URL of the service.
        api_key: sent as ``Authorization: Bearer <key>`` when given.
        timeout: seconds per request (training with ``train`` can take a while).
        retry: when to retry refused requests (429, 503, ...) and for how long in total.
        http: an ``httpx.Client`` to use instead of a new one (tests pass a TestClient).
        sleep: how to wait between retries (tests record the waits instead).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = http or httpx.Client(base_url=url, timeout=timeout)
        self._http.headers.update(auth_headers(api_key))
        self.retry = retry or RetryPolicy()
        self._sleep = sleep

    def run(self, call: Call[T]) -> T:
        """Send a call, retrying as :attr:`retry` allows; return its result or raise."""
        waited = 0.0
        for attempt in count():
            try:
                response = self._http.request(**request_arguments(call))
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
            self._sleep(delay)
            waited += delay
        raise AssertionError("unreachable")  # pragma: no cover

    def drive(self, work: Call[T] | Plan[T]) -> T:
        """Send a call, or run a plan: send each call it yields, wait out each pause."""
        if isinstance(work, Call):
            return self.run(work)
        answer: Any = None
        while True:
            try:
                step = work.send(answer)
            except StopIteration as done:
                return done.value
            if isinstance(step, Pause):
                answer = None
                time.sleep(step.seconds)
            else:
                answer = self.run(step)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    def iter_samples(
        self, function_id: str, *, annotated: bool | None = None, page_size: int = 1000
    ) -> Iterator[Sample]:
        """Every sample, oldest first, a page at a time."""
        start: int | None = 0
        while start is not None:
            page = plans.sample_page(function_id, start, annotated=annotated, page_size=page_size)
            sample_list, start = self.run(page)
            yield from sample_list

    def upload_samples(
        self,
        function_id: str,
        items: Iterable[SampleUpload | tuple[ImageLike, str | None]],
        *,
        concurrency: int = 4,
        progress: bool = True,
        via: str | None = None,
    ) -> UploadReport:
        """Upload many ``(image, label[, external_id[, annotated_by]])`` samples, ``concurrency``
        at a time, with a progress bar. Items whose externalId the function already has are
        skipped, so a rerun after a failure uploads only what is missing. One image's error
        (corrupt, too large) is reported in the result and the rest go on; other errors stop the
        upload. ``via="import"`` records the labels as a dataset import in their history."""
        present = {s.external_id for s in self.iter_samples(function_id) if s.external_id}
        todo, skipped = pending_uploads(items, present)
        report = UploadReport(skipped=skipped)
        bar = tqdm(total=len(todo), desc="upload", unit="img", disable=not progress)

        def upload(upload: SampleUpload) -> Sample:
            return self.create_sample(
                function_id,
                upload.image,
                upload.label,
                external_id=upload.external_id,
                annotated_by=upload.annotated_by,
                via=via,
            )

        with bar, ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = {pool.submit(upload, item): i for i, item in enumerate(todo)}
            for future in as_completed(futures):
                index = futures[future]
                try:
                    report.created.append(future.result())
                except Exception as exc:
                    if not is_item_failure(exc):
                        for other in futures:
                            other.cancel()
                        raise
                    report.failed.append((item_label(todo[index], index), exc))
                bar.update(1)
        return report

    def invoke_many(
        self,
        function_id: str,
        images: Sequence[ImageLike],
        *,
        batch_size: int = 16,
        concurrency: int = 4,
        capture: bool = False,
        progress: bool = False,
    ) -> list[Prediction | WinnowError]:
        """Classify many images with batch invoke, ``concurrency`` batches in flight; one entry
        per image in order (a Prediction, or the WinnowError of an image that failed alone). A
        batch over the service's body or batch limit (413) is split in halves and sent again."""
        chunks = list(batches(images, batch_size))
        bar = tqdm(total=len(images), desc="invoke", unit="img", disable=not progress)

        def invoke(chunk: Sequence[ImageLike]) -> list[Prediction | WinnowError]:
            try:
                answers = self.invoke_batch(function_id, chunk, capture=capture)
            except PayloadTooLarge as exc:  # too many bytes or images: halve the batch
                if len(chunk) > 1:
                    return invoke(chunk[: len(chunk) // 2]) + invoke(chunk[len(chunk) // 2 :])
                answers = [exc]
            bar.update(len(chunk))
            return answers

        with bar, ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return [answer for answers in pool.map(invoke, chunks) for answer in answers]

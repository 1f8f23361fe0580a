"""The client's operations of several calls, written once for ``Client`` and ``AsyncClient``.

A plan is a generator that yields each :class:`~winnow_client.calls.Call` to send and receives its
parsed result, or yields a :class:`Pause` to wait; it does no I/O itself. ``Client.drive`` runs a
plan blocking, ``AsyncClient.drive`` awaiting, so the steps and their order exist once.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from winnow_client.calls import Call, functions, samples, training
from winnow_client.models import Function, Label, Page, Sample, TrainingStatus

T = TypeVar("T")


@dataclass(frozen=True)
class Pause:
    """A plan's step that waits ``seconds`` before its next one (polling)."""

    seconds: float


Plan: TypeAlias = Generator[Call[Any] | Pause, Any, T]


def find_function(name: str) -> Plan[Function | None]:
    """The visible function called ``name`` (the oldest, if several), or None."""
    visible: list[Function] = yield functions.list_functions()
    return next((function for function in visible if function.name == name), None)


def ensure_function(
    name: str, labels: Iterable[str] = (), *, backbone: str | None = None
) -> Plan[Function]:
    """The function called ``name`` with at least ``labels``, created where missing."""
    labels = list(labels)
    function = yield from find_function(name)
    if function is None:
        created: Function = yield functions.create_function(name, labels, backbone=backbone)
        return created
    existing: list[Label] = yield functions.list_labels(function.id)
    names = {label.name for label in existing}
    for label in labels:
        if label not in names:
            yield functions.create_label(function.id, label)
    current: Function = yield functions.get_function(function.id)
    return current


def sample_page(
    function_id: str, start_index: int, *, annotated: bool | None, page_size: int
) -> Call[tuple[list[Sample], int | None]]:
    """One page of ``iter_samples``: its samples, and where the next page starts (None after the
    last page)."""
    end = start_index + page_size

    def next_start(page: Page[Sample]) -> tuple[list[Sample], int | None]:
        return page.data, (end if end < page.count and page.data else None)

    listing = samples.list_samples(
        function_id, annotated=annotated, start_index=start_index, count=page_size
    )
    return listing.then(next_start)


def training_finished(status: TrainingStatus, previous: TrainingStatus | None) -> bool:
    """Whether training is over and, given the ``previous`` status (e.g. what
    ``request_training`` answered), a run ended since then (no clocks compared)."""
    if status.state == "training":
        return False
    if previous is None:
        return True
    return status.finished_at is not None and status.finished_at != previous.finished_at


def wait_for_training(
    function_id: str,
    *,
    previous: TrainingStatus | None = None,
    timeout: float = 600.0,
    interval: float = 1.0,
) -> Plan[TrainingStatus]:
    """Poll until no training runs and, given ``previous`` (what ``request_training`` answered),
    one has ended since; raises TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        status: TrainingStatus = yield training.training_status(function_id)
        if training_finished(status, previous):
            return status
        if time.monotonic() >= deadline:
            raise TimeoutError(f"training of {function_id} still not finished ({status.state})")
        yield Pause(interval)

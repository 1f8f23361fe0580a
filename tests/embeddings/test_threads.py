"""ThreadTuner: warm-up, choosing the measured fastest count per batch size, following load."""

from __future__ import annotations

import logging

import pytest

from embeddings.threads import ThreadTuner, batch_bucket


def run(tuner: ThreadTuner, batch_size: int, ms_per_image: dict[int, float]) -> int:
    """One batch: the tuner chooses, the 'machine' takes ``ms_per_image[threads]``."""
    threads = tuner.choose(batch_size)
    tuner.record(batch_size, threads, ms_per_image[threads] * batch_size / 1000)
    return threads


def test_buckets_group_batch_sizes_by_powers_of_two() -> None:
    assert [batch_bucket(n) for n in (1, 2, 3, 4, 7, 8, 15, 16)] == [1, 2, 2, 3, 3, 4, 4, 5]


def test_each_choice_is_measured_first_then_the_fastest_is_used_per_batch_size() -> None:
    tuner = ThreadTuner([2, 1], warmup=3, explore_every=1000)
    # as on 2 cores: one thread wins for single images, two threads for batches of 8
    single, batch = {1: 28.6, 2: 31.5}, {1: 29.5, 2: 20.1}
    assert sorted(run(tuner, 1, single) for _ in range(6)) == [1, 1, 1, 2, 2, 2]
    assert sorted(run(tuner, 8, batch) for _ in range(6)) == [1, 1, 1, 2, 2, 2]
    assert {run(tuner, 1, single) for _ in range(20)} == {1}
    assert {run(tuner, 8, batch) for _ in range(20)} == {2}
    assert tuner.fastest(1) == 1 and tuner.fastest(8) == 2 and tuner.fastest(9) == 2
    assert tuner.fastest(32) is None


def test_periodic_exploration_notices_a_change_of_load() -> None:
    tuner = ThreadTuner([1, 2], warmup=2, explore_every=5, smoothing=0.5)
    for _ in range(10):
        run(tuner, 8, {1: 30.0, 2: 20.0})
    assert tuner.fastest(8) == 2
    # other work now takes a core: two threads stall, one thread is unaffected
    picks = [run(tuner, 8, {1: 30.0, 2: 45.0}) for _ in range(40)]
    assert tuner.fastest(8) == 1
    assert picks[-10:].count(1) >= 8  # back to mostly one thread, exploring two now and then
    assert 2 in picks[-10:]


@pytest.mark.parametrize(
    "kwargs",
    [{"choices": []}, {"choices": [0, 1]}, {"choices": [1], "warmup": 0},
     {"choices": [1], "explore_every": 1}, {"choices": [1], "smoothing": 0.0}],
)  # fmt: skip
def test_invalid_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ThreadTuner(**kwargs)


def test_the_choice_is_logged_once_measured_and_when_it_changes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tuner = ThreadTuner([1, 2], warmup=1, explore_every=2, smoothing=1.0)
    with caplog.at_level(logging.INFO, logger="embeddings.threads"):
        for _ in range(4):
            run(tuner, 8, {1: 30.0, 2: 20.0})
        run(tuner, 8, {1: 30.0, 2: 45.0})  # two threads got slow: one is faster now
        run(tuner, 8, {1: 30.0, 2: 45.0})
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("encoder: batches of 8-15 images run with 2 torch thread(s)")
    assert "1 thread(s) 30.0, 2 thread(s) 20.0" in messages[0]
    assert "run with 1 torch thread(s)" in messages[1]

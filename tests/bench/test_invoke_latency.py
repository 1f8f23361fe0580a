"""bench/invoke_latency.py's bookkeeping: where the code at bce0925 refits, and the summaries."""

from __future__ import annotations

import pytest

from bench.invoke_latency import (
    Answer,
    ColdStartCounter,
    NoveltyFitClock,
    TrafficCounter,
    latency,
    summarise,
)


def test_cold_start_refits_at_the_101st_input_every_100_and_after_a_cold_start_capture() -> None:
    counter = ColdStartCounter()
    refits = [n for n in range(450) if counter.judge(captured=n == 250)]
    assert refits == [100, 200, 251, 351]


def test_novelty_recalibrates_every_tenth_of_the_window_at_most_every_200_inputs() -> None:
    counter = TrafficCounter(seen=400)  # 400 inputs before a model: steps of 44, then 49
    recalibrations = [n for n in range(200) if counter.score(scored=True)]
    assert recalibrations[:3] == [0, 44, 93]
    counter = TrafficCounter(seen=5000)
    assert [n for n in range(450) if counter.score(scored=True)] == [0, 200, 400]
    assert not TrafficCounter(seen=5000).score(scored=False)  # no model, no calibration


def test_novelty_fits_inline_first_then_starts_a_background_refit_30_s_later() -> None:
    clock = NoveltyFitClock()
    assert clock.use(revision=32, now=10.0) == "novelty_fit"
    assert clock.use(revision=48, now=30.0) is None  # labelled data moved on, too soon
    assert clock.use(revision=48, now=40.0) == "novelty_refit_start"
    assert clock.use(revision=48, now=90.0) is None  # nothing new since


def test_a_round_is_summarised_over_the_stream_per_phase_and_per_mark() -> None:
    answers = [Answer("cold_start", n, 10.0 + n % 3, 200, []) for n in range(100)]
    answers[50].marks.append("cold_start_refit")
    answers[50].ms = 300.0
    answers.append(Answer("labelled", 100, 20.0, 200, ["after_training", "captured"], 1.0, "novel"))
    answers.append(Answer("labelled", 101, 0.0, 503, [], error="busy"))
    summary = summarise(answers)
    assert summary["stream"]["count"] == 101 and summary["errors"] == 1
    assert summary["first_error"] == "503: busy"
    assert summary["phases"]["cold_start"]["max_ms"] == 300.0
    assert summary["marks"]["cold_start_refit"] == {"count": 1, "median_ms": 300.0, "max_ms": 300.0}
    assert summary["unmarked"]["count"] == 99
    assert summary["slowest"][0]["n"] == 50
    assert [a["n"] for a in summary["marked"]] == [50, 100]
    assert summary["captures"] == {"none": 100, "novel": 1}


def test_latency_gives_percentiles_and_their_ratio() -> None:
    figures = latency([10.0] * 98 + [40.0, 1000.0])
    assert figures["p50_ms"] == 10.0 and figures["max_ms"] == 1000.0
    assert figures["p99_over_p50"] == pytest.approx(figures["p99_ms"] / 10.0)
    assert latency([]) == {"count": 0}

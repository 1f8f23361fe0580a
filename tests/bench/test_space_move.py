"""B13 vector space's move cost: the bench moves a small function in and out of a tuned space."""

from __future__ import annotations

import pytest

from bench.data import DATA_DIR
from bench.space_move import measure


@pytest.mark.skipif(not DATA_DIR.exists(), reason="Fashion-MNIST (dataset-fashion-mnist) absent")
def test_the_bench_times_a_move_each_way_and_the_embedding_alone() -> None:
    result = measure(samples=12, rounds=1, precision="fp32")

    assert set(result["seconds"]) == {"move_in", "move_out", "baseline"}
    assert all(len(times) == 1 and times[0] > 0 for times in result["seconds"].values())
    assert result["move_in_over_baseline"] > 0 and result["seconds_per_1000"]["move_in"] > 0

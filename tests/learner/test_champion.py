"""Champion / challenger decisions: a lower score is not enough, the sign test must agree."""

from __future__ import annotations

import numpy as np
import pytest

from learner.champion import Comparison, compare_on, decide


def comparison(n: int, champion_only: int, challenger_only: int, both: int) -> Comparison:
    """``n`` samples: ``both`` right for both, the discordant ones as given, the rest wrong."""
    truth = np.array(["a"] * n, dtype=object)
    champion = np.array(["b"] * n, dtype=object)
    challenger = np.array(["b"] * n, dtype=object)
    champion[: both + champion_only] = "a"
    challenger[:both] = "a"
    challenger[both + champion_only : both + champion_only + challenger_only] = "a"
    return compare_on(
        "holdout", np.ones(n, bool), truth=truth, challenger_pred=challenger, champion_pred=champion
    )


def test_comparison_counts_the_samples_only_one_head_gets_right() -> None:
    found = comparison(12, champion_only=3, challenger_only=1, both=6)
    assert (found.n, found.champion_only_right, found.challenger_only_right) == (12, 3, 1)
    assert found.champion_accuracy == pytest.approx(9 / 12)
    assert found.challenger_accuracy == pytest.approx(7 / 12)


def test_a_clearly_worse_challenger_is_rejected_with_its_evidence() -> None:
    shuffled = comparison(12, champion_only=6, challenger_only=0, both=6)  # 12/12 vs 6/12
    decision = decide([shuffled], tolerance=0.01, min_samples=10)
    assert not decision.deploy and decision.basis == "holdout"
    assert shuffled.worse_p_value() == pytest.approx(0.5**6)
    assert "worse than champion on holdout (n=12)" in decision.reason
    assert "champion 6, challenger 0" in decision.reason and "p=0.0156" in decision.reason


def test_one_sample_behind_on_ten_is_noise_and_deploys() -> None:
    noisy = comparison(10, champion_only=1, challenger_only=0, both=6)  # 10 points behind
    decision = decide([noisy], tolerance=0.01, min_samples=10)
    assert decision.deploy and "not significantly worse" in decision.reason


def test_a_small_drop_on_many_samples_is_significant() -> None:
    large = comparison(1000, champion_only=60, challenger_only=30, both=800)  # 3 points behind
    assert large.worse_p_value() < 0.01
    assert not decide([large], tolerance=0.01, min_samples=10).deploy
    # within the tolerance it deploys however significant
    assert decide([large], tolerance=0.05, min_samples=10).deploy


def test_the_first_basis_with_enough_samples_decides() -> None:
    too_few = comparison(5, champion_only=5, challenger_only=0, both=0)
    enough = comparison(20, champion_only=0, challenger_only=2, both=15)
    decision = decide([too_few, enough], tolerance=0.01, min_samples=10)
    assert decision.deploy and decision.basis == "holdout" and "n=20" in decision.reason
    nothing = decide([too_few], tolerance=0.01, min_samples=10)
    assert nothing.deploy and nothing.basis is None

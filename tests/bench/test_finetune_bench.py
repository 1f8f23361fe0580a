"""B13's bookkeeping: per-budget means, paired gains and the guard's mistakes in hindsight."""

from __future__ import annotations

import pytest

from bench.finetune import summarise


def run(budget: int, seed: int, champion: float, tuned: float, deployed: bool) -> dict:
    epochs = [{"epoch": 0.0, "val_accuracy": 0.5}, {"epoch": 1.0, "seconds": 2.0}]
    return {
        "budget": budget,
        "seed": seed,
        "champion_test_accuracy": champion,
        "tuned_test_accuracy": tuned,
        "gain_pt": 100 * (tuned - champion),
        "deployed": deployed,
        "guard_wrong": deployed and tuned <= champion,
        "tuning": {"seconds": 4.0, "train_images": 100, "best_epoch": 1, "epochs": epochs},
    }


def test_gains_are_paired_and_wrong_deploys_counted() -> None:
    runs = [
        run(200, 0, 0.70, 0.69, deployed=True),  # deployed a loser: the guard was wrong
        run(200, 1, 0.72, 0.75, deployed=False),
        run(2000, 0, 0.84, 0.89, deployed=True),
    ]
    small, large = summarise(runs, [200, 2000])

    assert small["seeds"] == 2 and small["deployed"] == 1 and small["guard_wrong"] == 1
    assert small["gain_mean_pt"] == pytest.approx(1.0)
    assert small["champion_mean"] == pytest.approx(71.0)
    assert large["gain_mean_pt"] == pytest.approx(5.0) and large["guard_wrong"] == 0
    assert large["tuning_seconds_per_1000_images"] == pytest.approx(40.0)
    assert large["epoch_seconds_per_1000_images"] == pytest.approx(20.0)

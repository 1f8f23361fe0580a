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


def test_tune_on_trains_a_copy_on_the_chosen_rows_and_their_views() -> None:
    import numpy as np
    import torch

    from bench.finetune import tune_on
    from learner.finetune import TuneConfig

    tail = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 1), torch.nn.AdaptiveAvgPool2d(1))
    tail.append(torch.nn.Flatten())
    before = [p.clone() for p in tail.parameters()]
    originals = torch.randn(10, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    activations = [originals, originals + 0.1]
    labels = np.asarray(["a", "b"] * 5)
    config = TuneConfig(views=1, max_epochs=1, val_fraction=0.0, batch_size=4)

    result = tune_on(tail, activations, np.arange(6), labels, config)

    assert result.train_images == 6 and list(result.model.classes_) == ["a", "b"]
    assert all(torch.equal(p, q) for p, q in zip(tail.parameters(), before, strict=True))

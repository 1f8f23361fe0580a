"""B13 vector space's plumbing: the labelled picks B7 and it share, and swapping a space in."""

from __future__ import annotations

import numpy as np
import torch

from bench.data import BenchmarkData, Split
from bench.novelty import labelled_picks
from bench.tuned_space import in_space
from learner.finetune import TunedModel


def test_labelled_picks_take_each_seen_class_only() -> None:
    labels = np.repeat(np.asarray(["bag", "coat", "shirt"]), 10)
    picks = labelled_picks(labels, ("shirt",), 4, np.random.default_rng(0))
    again = labelled_picks(labels, ("shirt",), 4, np.random.default_rng(0))

    assert np.array_equal(picks, again)  # B7 and B13 vector space pick the same labels
    assert sorted(labels[picks]) == ["bag"] * 4 + ["coat"] * 4
    assert len(set(picks.tolist())) == 8


def test_in_space_embeds_every_split_from_its_own_activations() -> None:
    def split(count: int) -> Split:
        return Split(np.zeros((count, 2), np.float32), np.asarray(["a"] * count), np.arange(count))

    data = BenchmarkData(pool=split(3), val=split(2), test=split(1), backbone="b")
    activations = {
        name: [torch.full((n, 4, 2, 2), float(n))]
        for name, n in (("pool", 3), ("val", 2), ("test", 1))
    }
    tail = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    model = TunedModel(tail, ["a", "b"], dim=4, tuned_blocks=1)

    swapped = in_space(data, model.eval().run, activations)

    assert [swapped.pool.vectors.shape, swapped.val.vectors.shape, swapped.test.vectors.shape] == [
        (3, 4),
        (2, 4),
        (1, 4),
    ]
    assert np.allclose(np.linalg.norm(swapped.val.vectors, axis=1), 1.0)  # unit rows
    assert np.array_equal(swapped.test.labels, data.test.labels)


def test_summary_pairs_the_spaces_and_keeps_never_proposed() -> None:
    from bench.tuned_space import summarise

    def run(scenario: str, space: str, auroc: float, after: dict, seen_only: int) -> dict:
        return {
            "scenario": scenario,
            "space": space,
            "auroc_winnow": auroc,
            "auroc_winnow_labelled_only": auroc,
            "auroc_max_probability": 0.5,
            "auroc_knn_distance": 0.5,
            "proposed_after": after,
            "proposed_after_with_reviewer": after,
            "seen_only_proposals_max": seen_only,
        }

    runs = [
        run("far", "frozen", 0.9, {"trouser": 40, "bag": 120}, 0),
        run("far", "tuned", 0.8, {"trouser": 60, "bag": None}, 1),
        run("lookalike", "frozen", 0.7, {"shirt": 300, "pullover": 200}, 0),
        run("lookalike", "tuned", 0.75, {"shirt": 250, "pullover": 90}, 0),
    ]
    summary = summarise(runs)

    assert summary["far"]["unseen"] == ["trouser", "bag"]
    assert summary["far"]["frozen"]["proposed_after_worst"] == 120
    assert summary["far"]["tuned"]["proposed_after_worst"] is None  # bag never proposed
    assert summary["far"]["tuned"]["seen_only_proposals_max"] == 1
    tuned = summary["lookalike"]["tuned"]
    assert {
        "auroc_winnow": tuned["auroc_winnow"]["mean"],
        "proposed_after_worst": tuned["proposed_after_worst"],
        "proposed_after_with_reviewer_worst": tuned["proposed_after_with_reviewer_worst"],
        "seen_only_proposals_max": tuned["seen_only_proposals_max"],
    } == {
        "auroc_winnow": 0.75,
        "proposed_after_worst": 250,
        "proposed_after_with_reviewer_worst": 250,
        "seen_only_proposals_max": 0,
    }

"""Reviewer quality over votes: Dawid-Skene, the consensus rules, kappa, gold accuracy, pace."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from review_queue.quality import (
    GoldScore,
    ItemEstimate,
    ReviewerAgreement,
    Settled,
    Vote,
    dawid_skene,
    gold_accuracy,
    items_per_hour,
    kappa_against_consensus,
    unanimous,
    vote_weight,
    weighted_settle,
)

LABELS = [f"class-{i}" for i in range(5)]


def _synthetic_votes(
    accuracies: dict[str, float], n_items: int, seed: int
) -> tuple[list[Vote], dict[int, str], dict[str, float]]:
    """Every item labelled by every reviewer; wrong labels uniform over the other classes.
    Returns the votes, the true labels and each reviewer's empirical accuracy."""
    rng = np.random.default_rng(seed)
    truth = {item: LABELS[int(rng.integers(len(LABELS)))] for item in range(n_items)}
    votes = []
    for item, true in truth.items():
        wrong = [c for c in LABELS if c != true]
        for reviewer, accuracy in accuracies.items():
            right = rng.random() < accuracy
            votes.append(Vote(item, reviewer, true if right else wrong[rng.integers(len(wrong))]))
    empirical = {
        r: float(np.mean([v.label == truth[v.item_id] for v in votes if v.reviewer == r]))
        for r in accuracies
    }
    return votes, truth, empirical


def test_dawid_skene_recovers_the_reviewers_accuracies_and_the_true_labels() -> None:
    accuracies = {"careful": 0.95, "good": 0.85, "careless": 0.6}
    votes, truth, empirical = _synthetic_votes(accuracies, 400, seed=0)

    result = dawid_skene(votes)

    for reviewer, estimate in result.reviewers.items():
        assert estimate.accuracy == pytest.approx(empirical[reviewer], abs=0.03), reviewer
        assert estimate.votes == estimate.shared_votes == 400
    right = np.mean([result.items[item].label == label for item, label in truth.items()])
    majority = np.mean(
        [
            max(LABELS, key=[v.label for v in votes if v.item_id == item].count) == label
            for item, label in truth.items()
        ]
    )
    assert right > 0.93 and right >= majority
    assert all(0.2 <= e.posterior <= 1.0 for e in result.items.values())
    assert sum(result.priors.values()) == pytest.approx(1.0)
    assert result.accuracies() == {r: e.accuracy for r, e in result.reviewers.items()}


def test_dawid_skene_leaves_a_reviewer_nobody_overlapped_without_an_estimate() -> None:
    votes = [(1, "ann", "cat"), (1, "bob", "cat"), (2, "ann", "dog"), (2, "bob", "cat")]
    votes += [(3, "cy", "dog"), (4, "cy", "cat")]

    result = dawid_skene(votes)

    assert result.reviewers["cy"].accuracy is None and result.reviewers["cy"].shared_votes == 0
    assert result.reviewers["ann"].accuracy is not None
    assert "cy" not in result.accuracies()
    assert result.items[3] == ItemEstimate("dog", pytest.approx(1.0))


def test_gold_answers_are_pinned_and_make_a_lone_reviewer_measurable() -> None:
    votes = [(1, "ann", "cat"), (2, "ann", "dog"), (3, "ann", "cat"), (4, "ann", "dog")]

    result = dawid_skene(votes, gold={1: "cat", 2: "cat"})

    assert result.items[2].label == "cat"  # the gold answer, not ann's vote
    assert result.reviewers["ann"].shared_votes == 2
    assert result.reviewers["ann"].accuracy is not None and result.reviewers["ann"].accuracy < 1


def test_dawid_skene_edge_cases_empty_one_reviewer_one_label() -> None:
    assert dawid_skene([]).items == {} and dawid_skene([]).reviewers == {}

    alone = dawid_skene([(1, "ann", "cat"), (2, "ann", "dog")])
    assert alone.reviewers["ann"].accuracy is None  # one reviewer: nothing to compare with
    assert {item: e.label for item, e in alone.items.items()} == {1: "cat", 2: "dog"}

    one_label = dawid_skene([(1, "ann", "cat"), (1, "bob", "cat"), (2, "bob", "cat")])
    assert one_label.reviewers["ann"].accuracy == pytest.approx(1.0)
    assert one_label.priors == {"cat": pytest.approx(1.0)}


def test_unanimous_needs_every_review_to_agree() -> None:
    assert unanimous(["cat", "cat", "cat"]) == "cat"
    assert unanimous(["cat"]) == "cat"
    assert unanimous(["cat", "dog", "cat"]) is None
    assert unanimous([]) is None


def test_weighted_settle_follows_the_more_accurate_reviewer() -> None:
    accuracies = {"careful": 0.95, "careless": 0.7}

    settled = weighted_settle([("careless", "dog"), ("careful", "cat")], accuracies, n_labels=10)

    # one-coin odds: 0.95*9/0.05 = 171 for cat, 0.7*9/0.3 = 21 for dog, 1 for each of 8 others
    assert settled == Settled("cat", pytest.approx(171 / (171 + 21 + 8)))
    # two careless reviewers agreeing outweigh one careful one: 21 * 21 = 441 > 171
    two = weighted_settle(
        [("careless", "dog"), ("careless-2", "dog"), ("careful", "cat")],
        {**accuracies, "careless-2": 0.7},
        n_labels=10,
    )
    assert two.label == "dog" and two.posterior == pytest.approx(441 / (441 + 171 + 8))


def test_weighted_settle_edge_cases() -> None:
    one = weighted_settle([("ann", "cat")], {"ann": 0.9}, n_labels=10)
    assert one == Settled("cat", pytest.approx(0.9))  # a lone vote's posterior is its accuracy
    tie = weighted_settle([("ann", "dog"), ("bob", "cat")], {"ann": 0.9, "bob": 0.9}, n_labels=2)
    assert tie == Settled("cat", pytest.approx(0.5))  # ties go to the label sorting first
    newcomer = weighted_settle([("new", "dog")], {}, n_labels=5, default_accuracy=0.6)
    assert newcomer.posterior == pytest.approx(0.6)
    certain = weighted_settle(
        [("ann", "cat"), ("bob", "dog")], {"ann": 1.0, "bob": 0.0}, n_labels=3
    )
    assert certain.label == "cat" and math.isfinite(vote_weight(1.0, 3))
    with pytest.raises(ValueError, match="no votes"):
        weighted_settle([], {"ann": 0.9}, n_labels=10)
    with pytest.raises(ValueError, match="n_labels"):
        weighted_settle([("ann", "cat"), ("bob", "dog"), ("cy", "owl")], {}, n_labels=2)


def test_kappa_against_consensus_by_hand() -> None:
    consensus = {1: "cat", 2: "cat", 3: "dog", 4: "dog"}
    votes = [(i, "bob", label) for i, label in consensus.items()]  # bob: the consensus itself
    votes += [(1, "ann", "cat"), (2, "ann", "dog"), (3, "ann", "dog"), (4, "ann", "dog")]
    votes += [(5, "ann", "cat"), (6, "cy", "cat")]  # reviewed once or never settled: skipped

    found = kappa_against_consensus(votes, consensus)

    # ann vs consensus: agreement 3/4; chance (1/4 cat * 2/4 cat) + (3/4 dog * 2/4 dog) = 1/2
    assert found["ann"] == ReviewerAgreement(pytest.approx(0.5), 0.75, 4)
    assert found["bob"] == ReviewerAgreement(pytest.approx(1.0), 1.0, 4)
    assert found["cy"] == ReviewerAgreement(None, None, 0)
    # counting single-review items too compares ann's item 5 (no consensus: still skipped)
    assert kappa_against_consensus(votes, consensus, min_reviews=1)["ann"].compared == 4


def test_kappa_is_undefined_when_only_one_label_was_ever_seen() -> None:
    votes = [(1, "ann", "cat"), (1, "bob", "cat")]
    found = kappa_against_consensus(votes, {1: "cat"})
    assert found["ann"] == ReviewerAgreement(None, 1.0, 1)


def test_gold_accuracy_counts_only_gold_items() -> None:
    votes = [(1, "ann", "cat"), (2, "ann", "dog"), (3, "ann", "dog"), (1, "bob", "cat")]
    votes += [(9, "cy", "owl")]

    found = gold_accuracy(votes, {1: "cat", 2: "cat"})

    assert found == {"ann": GoldScore(1, 2), "bob": GoldScore(1, 1)}
    assert found["ann"].accuracy == 0.5
    assert gold_accuracy([], {1: "cat"}) == {}


def test_items_per_hour_counts_work_not_breaks() -> None:
    start = datetime(2025, 1, 1, 9, 0)
    minutes = [0, 1, 2, 3, 60, 62]  # a 57-minute break between two sessions
    times = [start + timedelta(minutes=m) for m in minutes]

    # timed votes: 3 in the first session (3 minutes), 1 in the second (2 minutes)
    assert items_per_hour(times) == pytest.approx(4 / (5 / 60))
    assert items_per_hour(list(reversed(times))) == pytest.approx(48.0)
    # with a 2-hour idle limit the break counts as work: 5 votes over 62 minutes
    assert items_per_hour(times, idle_after=timedelta(hours=2)) == pytest.approx(5 / (62 / 60))


def test_items_per_hour_times_a_batch_by_the_gap_before_it() -> None:
    start = datetime(2025, 1, 1, 9, 0)
    page = [start] * 10 + [start + timedelta(minutes=2)] * 10  # two grid pages, 2 minutes apart
    assert items_per_hour(page) == pytest.approx(10 / (2 / 60))


def test_items_per_hour_edge_cases() -> None:
    start = datetime(2025, 1, 1, 9, 0)
    assert items_per_hour([]) is None
    assert items_per_hour([start]) is None
    assert items_per_hour([start, start]) is None  # one batch: no time measured
    assert items_per_hour([start, start + timedelta(hours=1)]) is None  # only a break
    quick = [start, start + timedelta(seconds=1)]
    assert items_per_hour(quick) is None  # a second of work is no pace
    assert items_per_hour(quick, min_active=timedelta(0)) == pytest.approx(3600.0)

"""The team's reviewers: counts and quality per reviewer, from their votes (review_queue.quality).

Quality is measured three ways: Dawid-Skene's estimated accuracy (from how votes on shared items
and gold items agree; crowd-kit), Cohen's kappa against the decided label (items with two or more
reviews, or settled disputes), accuracy on gold items, and pace (items per hour of active work).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import col, select

from review_queue import quality
from service.functions import get_function
from service.runtime import Runtime
from service.schemas import ReviewerPublic
from store import Label, ReviewClaim, ReviewItem, session_scope

# How long weighted votes settle by one fit of the reviewers' accuracies before the next.
ACCURACIES_MAX_AGE = 60.0

Vote = tuple[Hashable, str, str]


@dataclass
class _Votes:
    """A function's votes: on ordinary items, on gold items (with their answers), and each
    reviewer's vote times and reviews on items now disputed."""

    votes: list[Vote] = field(default_factory=list)
    gold_votes: list[Vote] = field(default_factory=list)
    answers: dict[Hashable, str] = field(default_factory=dict)
    times: dict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    disputed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    decided: dict[Hashable, str] = field(default_factory=dict)

    def fit(self) -> quality.DawidSkeneResult:
        return quality.dawid_skene(self.votes + self.gold_votes, gold=self.answers)


def _read_votes(rt: Runtime, function_id: str) -> _Votes:
    with session_scope(rt.engine) as session:
        get_function(session, function_id)
        rows = session.exec(
            select(ReviewClaim, ReviewItem, Label)
            .join(ReviewItem, col(ReviewItem.id) == col(ReviewClaim.item_id))
            .join(Label, col(Label.id) == col(ReviewClaim.label_id))
            .where(ReviewClaim.function_id == function_id, col(ReviewClaim.voted_at).isnot(None))
        ).all()
        decided = session.exec(
            select(ReviewItem.id, Label.name)
            .join(Label, col(Label.id) == col(ReviewItem.label_id))
            .where(
                ReviewItem.function_id == function_id,
                ReviewItem.status == "annotated",
                ReviewItem.kind != "gold",
            )
        ).all()
    found = _Votes(decided=dict(decided))
    for claim, item, label in rows:
        assert claim.voted_at is not None
        found.times[claim.reviewer].append(claim.voted_at)
        vote = (item.id, claim.reviewer, label.name)
        if item.kind == "gold" and item.given_label is not None:
            found.gold_votes.append(vote)
            found.answers[item.id] = item.given_label
        else:
            found.votes.append(vote)
            found.disputed[claim.reviewer] += item.status == "disputed"
    return found


def accuracies(rt: Runtime, function_id: str) -> dict[str, float]:
    """The reviewers' accuracies Dawid-Skene estimates from the function's votes (gold items
    pinned to their answers), refitted when a minute old: a fit over thousands of votes takes a
    second or two, so votes settle by a recent one, fitted outside their transaction."""
    fitted = rt.reviewer_accuracies.get(function_id)
    if fitted is not None and time.monotonic() - fitted[0] < ACCURACIES_MAX_AGE:
        return fitted[1]
    estimate = _read_votes(rt, function_id).fit().accuracies()
    rt.reviewer_accuracies[function_id] = (time.monotonic(), estimate)
    return estimate


def reviewers(rt: Runtime, function_id: str) -> list[ReviewerPublic]:
    """Every reviewer who voted on the function's items, most votes first."""
    found = _read_votes(rt, function_id)
    estimate = found.fit()
    agreement = quality.kappa_against_consensus(found.votes, found.decided)
    gold = quality.gold_accuracy(found.gold_votes, found.answers)
    result = []
    for name in sorted(found.times, key=lambda n: (-len(found.times[n]), n)):
        ds = estimate.reviewers.get(name)
        kappa = agreement.get(name)
        score = gold.get(name)
        result.append(
            ReviewerPublic(
                reviewer=name,
                votes=sum(1 for _, r, _ in found.votes if r == name),
                gold_votes=score.total if score else 0,
                disputed=found.disputed[name],
                estimated_accuracy=ds.accuracy if ds else None,
                kappa=kappa.kappa if kappa else None,
                agreement=kappa.agreement if kappa else None,
                gold_accuracy=score.accuracy if score else None,
                items_per_hour=quality.items_per_hour(found.times[name]),
            )
        )
    return result

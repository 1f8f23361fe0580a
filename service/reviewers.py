"""The team's reviewers: counts and quality per reviewer, from their votes (review_queue.quality).

Quality is measured three ways: Dawid-Skene's estimated accuracy (from how votes on shared items
and gold items agree; crowd-kit), Cohen's kappa against the decided label (items with two or more
reviews, or settled disputes), accuracy on gold items, and pace (items per hour of active work).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from datetime import datetime

from sqlmodel import col, select

from review_queue import quality
from service.functions import get_function
from service.runtime import Runtime
from service.schemas import ReviewerPublic
from store import Label, ReviewClaim, ReviewItem, session_scope


def reviewers(rt: Runtime, function_id: str) -> list[ReviewerPublic]:
    """Every reviewer who voted on the function's items, most votes first."""
    with session_scope(rt.engine) as session:
        get_function(session, function_id)
        rows = session.exec(
            select(ReviewClaim, ReviewItem, Label)
            .join(ReviewItem, col(ReviewItem.id) == col(ReviewClaim.item_id))
            .join(Label, col(Label.id) == col(ReviewClaim.label_id))
            .where(ReviewClaim.function_id == function_id, col(ReviewClaim.voted_at).isnot(None))
        ).all()
        decided_labels: dict[Hashable, str] = dict(
            session.exec(
                select(ReviewItem.id, Label.name)
                .join(Label, col(Label.id) == col(ReviewItem.label_id))
                .where(
                    ReviewItem.function_id == function_id,
                    ReviewItem.status == "annotated",
                    ReviewItem.kind != "gold",
                )
            ).all()
        )
    votes: list[tuple[str, str, str]] = []
    gold_votes: list[tuple[str, str, str]] = []
    answers: dict[Hashable, str] = {}
    times: dict[str, list[datetime]] = defaultdict(list)
    disputed: dict[str, int] = defaultdict(int)
    for claim, item, label in rows:
        assert claim.voted_at is not None
        times[claim.reviewer].append(claim.voted_at)
        vote = (item.id, claim.reviewer, label.name)
        if item.kind == "gold" and item.given_label is not None:
            gold_votes.append(vote)
            answers[item.id] = item.given_label
        else:
            votes.append(vote)
            disputed[claim.reviewer] += item.status == "disputed"
    estimate = quality.dawid_skene(votes + gold_votes, gold=answers) if rows else None
    agreement = quality.kappa_against_consensus(votes, decided_labels)
    gold = quality.gold_accuracy(gold_votes, answers)
    result = []
    for name in sorted(times, key=lambda n: (-len(times[n]), n)):
        ds = estimate.reviewers.get(name) if estimate else None
        kappa = agreement.get(name)
        score = gold.get(name)
        result.append(
            ReviewerPublic(
                reviewer=name,
                votes=sum(1 for _, r, _ in votes if r == name),
                gold_votes=score.total if score else 0,
                disputed=disputed[name],
                estimated_accuracy=ds.accuracy if ds else None,
                kappa=kappa.kappa if kappa else None,
                agreement=kappa.agreement if kappa else None,
                gold_accuracy=score.accuracy if score else None,
                items_per_hour=quality.items_per_hour(times[name]),
            )
        )
    return result

"""Reviewer quality and consensus over votes: pure functions, no database.

A vote is ``(item_id, reviewer, label)``. When a team reviews, an item's reviews either agree
(:func:`unanimous`) or are settled: by the reviewers' estimated accuracies
(:func:`weighted_settle`, one-coin Dawid-Skene weighting) or by a person. Each reviewer's quality is
measured three ways, because each sees something the others miss:

* :func:`dawid_skene`: every reviewer's accuracy estimated from how their votes agree with the
  others' on shared items (Dawid & Skene 1979, through crowd-kit), no answers needed;
* :func:`kappa_against_consensus`: Cohen's kappa of a reviewer's votes against the consensus;
* :func:`gold_accuracy`: the share of gold items (known answers shown blind) labelled right;

and :func:`items_per_hour` measures pace from vote times.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

__all__ = [
    "DawidSkeneResult",
    "GoldScore",
    "ItemEstimate",
    "ReviewerAgreement",
    "ReviewerEstimate",
    "Settled",
    "Vote",
    "dawid_skene",
    "gold_accuracy",
    "items_per_hour",
    "kappa_against_consensus",
    "unanimous",
    "weighted_settle",
]

# A reviewer estimated at exactly 0 or 1 would get an infinite vote weight; no finite record
# supports that certainty.
_ACCURACY_CLIP = 1e-3


class Vote(NamedTuple):
    """One review of one item: who gave which label. Plain 3-tuples are accepted too."""

    item_id: Hashable
    reviewer: str
    label: str


@dataclass(frozen=True)
class Settled:
    """The label a settle chose and its posterior probability under the vote weighting."""

    label: str
    posterior: float


@dataclass(frozen=True)
class ItemEstimate:
    """Dawid-Skene's most probable label of one item and its posterior probability."""

    label: str
    posterior: float


@dataclass(frozen=True)
class ReviewerEstimate:
    """A reviewer's estimated accuracy and the votes behind it.

    ``accuracy`` is ``sum_c prior[c] * P(says c | truly c)`` from the reviewer's confusion matrix,
    the chance their label is right on a random item. It is None when ``shared_votes`` is 0: with
    no vote on an item someone else reviewed (or a gold item) there is nothing to estimate from.
    """

    accuracy: float | None
    votes: int
    shared_votes: int


@dataclass(frozen=True)
class DawidSkeneResult:
    """Per-item labels with posteriors, per-reviewer accuracies, the estimated class priors."""

    items: Mapping[Hashable, ItemEstimate]
    reviewers: Mapping[str, ReviewerEstimate]
    priors: Mapping[str, float]

    def accuracies(self) -> dict[str, float]:
        """The reviewers with an estimate, for :func:`weighted_settle`."""
        return {r: e.accuracy for r, e in self.reviewers.items() if e.accuracy is not None}


@dataclass(frozen=True)
class ReviewerAgreement:
    """A reviewer's votes against the consensus: Cohen's kappa and the raw agreement it corrects
    for chance. Both are None with nothing compared; kappa also when chance agreement is total
    (every compared vote and consensus one and the same label)."""

    kappa: float | None
    agreement: float | None
    compared: int


@dataclass(frozen=True)
class GoldScore:
    """A reviewer's votes on gold items: how many matched the known answer."""

    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total


def unanimous(labels: Iterable[str]) -> str | None:
    """The consensus rule for one item: the label when every review gave it, else None (no
    reviews count as no consensus)."""
    distinct = set(labels)
    return distinct.pop() if len(distinct) == 1 else None


def vote_weight(accuracy: float, n_labels: int) -> float:
    """One-coin Dawid-Skene log-odds weight of a vote: ``log(a (K - 1) / (1 - a))``.

    A reviewer right with probability ``a`` and wrong uniformly over the other ``K - 1`` labels
    makes their label ``a (K - 1) / (1 - a)`` times likelier than any other; chance (``a = 1/K``)
    weighs 0.
    """
    a = min(max(accuracy, _ACCURACY_CLIP), 1 - _ACCURACY_CLIP)
    return math.log(a * (n_labels - 1) / (1 - a))


def weighted_settle(
    votes: Iterable[tuple[str, str]],
    accuracies: Mapping[str, float],
    *,
    n_labels: int,
    default_accuracy: float = 0.8,
) -> Settled:
    """Settle one item's votes by the reviewers' accuracies: the label with the highest summed
    one-coin log-odds (:func:`vote_weight`), with its posterior under a uniform class prior.

    Ties (equal weights on different labels) go to the label that sorts first, so the same votes
    always settle the same way; their posterior shows the tie (0.5 for two), which a caller can
    send to a person instead.

    Args:
        votes: ``(reviewer, label)`` pairs of one item.
        accuracies: estimated accuracy per reviewer (e.g. ``dawid_skene(...).accuracies()``).
        n_labels: how many labels the item could have (the function's label count).
        default_accuracy: the accuracy assumed for a reviewer missing from ``accuracies``
            (a newcomer without an estimate yet).

    Raises:
        ValueError: no votes, fewer than two labels, or more labels voted than exist.
    """
    scores: dict[str, float] = defaultdict(float)
    for reviewer, label in votes:
        scores[label] += vote_weight(accuracies.get(reviewer, default_accuracy), n_labels)
    if not scores:
        raise ValueError("no votes to settle")
    if n_labels < max(2, len(scores)):
        raise ValueError(f"n_labels={n_labels} but {len(scores)} labels were voted")
    label = min(scores, key=lambda name: (-scores[name], name))
    top = scores[label]
    # labels nobody voted for score 0 and share the rest of the posterior mass
    unvoted = (n_labels - len(scores)) * math.exp(-top)
    normaliser = sum(math.exp(s - top) for s in scores.values()) + unvoted
    return Settled(label, 1.0 / normaliser)


def dawid_skene(
    votes: Iterable[tuple[Hashable, str, str]],
    *,
    gold: Mapping[Hashable, str] | None = None,
    n_iter: int = 100,
    tol: float = 1e-5,
) -> DawidSkeneResult:
    """Dawid-Skene (full confusion matrix per reviewer) fitted by EM with crowd-kit.

    Only items two or more reviewers saw (and gold items) tell a reviewer's accuracy; items with
    one vote take their label from that vote's confusion column and barely move the estimates.

    Args:
        votes: ``(item_id, reviewer, label)`` triples; repeated votes of one reviewer on one
            item count as separate votes.
        gold: known answers of gold items; their posteriors are pinned to the answer during EM.
        n_iter: most EM iterations.
        tol: stop when the evidence lower bound improves by less than this.
    """
    rows = [(item, str(reviewer), str(label)) for item, reviewer, label in votes]
    if not rows:
        return DawidSkeneResult(items={}, reviewers={}, priors={})
    import pandas as pd  # crowd-kit's data frames; imported with it, ~1.3 s (nltk)
    from crowdkit.aggregation import DawidSkene

    data = pd.DataFrame(rows, columns=["task", "worker", "label"])
    true_labels = None
    if gold:
        voted = set(data["label"])
        # crowd-kit can only pin a gold item to a label some vote used (a column of its matrix)
        known = {item: answer for item, answer in gold.items() if answer in voted}
        true_labels = pd.Series(known, dtype=object) if known else None
    model = DawidSkene(n_iter=n_iter, tol=tol).fit(data, true_labels)
    probabilities, errors, fitted_priors = model.probas_, model.errors_, model.priors_
    if probabilities is None or errors is None or fitted_priors is None:
        raise RuntimeError("crowd-kit's DawidSkene left its fit empty")
    priors = {str(label): float(p) for label, p in fitted_priors.items()}

    items = {}
    for item, row in probabilities.iterrows():
        label = min(row.index, key=lambda name: (-row[name], str(name)))
        items[item] = ItemEstimate(str(label), float(row[label]))

    per_item = Counter(item for item, _, _ in rows)
    shared = {item for item, n in per_item.items() if n > 1}
    if true_labels is not None:
        shared |= set(true_labels.index)
    reviewers = {}
    for reviewer, group in data.groupby("worker", sort=True):
        n_shared = int(group["task"].isin(shared).sum())
        accuracy = None
        if n_shared:
            # P(right) = sum over true classes c of prior(c) * P(reviewer says c | truly c); a
            # label the reviewer never gave has no row, so that class contributes nothing
            said = errors.loc[reviewer]
            accuracy = float(
                sum(p * said.at[c, c] for c, p in fitted_priors.items() if c in said.index)
            )
        reviewers[str(reviewer)] = ReviewerEstimate(accuracy, len(group), n_shared)
    return DawidSkeneResult(items=items, reviewers=reviewers, priors=priors)


def kappa_against_consensus(
    votes: Iterable[tuple[Hashable, str, str]],
    consensus: Mapping[Hashable, str],
    *,
    min_reviews: int = 2,
) -> dict[str, ReviewerAgreement]:
    """Cohen's kappa (scikit-learn's ``cohen_kappa_score``) of each reviewer's votes against the
    consensus label of the same items.

    Only items with at least ``min_reviews`` votes are compared: on an item only one person
    reviewed the consensus is that person's own vote, and agreeing with oneself says nothing.

    Args:
        votes: ``(item_id, reviewer, label)`` triples.
        consensus: the settled label per item; items without one are skipped.
        min_reviews: the fewest votes an item needs to be compared.
    """
    from sklearn.metrics import cohen_kappa_score

    rows = list(votes)
    per_item = Counter(item for item, _, _ in rows)
    pairs: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for item, reviewer, label in rows:
        if item in consensus and per_item[item] >= min_reviews:
            theirs, agreed = pairs[reviewer]
            theirs.append(label)
            agreed.append(consensus[item])
    found = {}
    for reviewer in sorted({reviewer for _, reviewer, _ in rows}):
        theirs, agreed = pairs.get(reviewer, ([], []))
        if not theirs:
            found[reviewer] = ReviewerAgreement(None, None, 0)
            continue
        agreement = sum(a == b for a, b in zip(theirs, agreed, strict=True)) / len(theirs)
        kappa = None
        if len(set(theirs) | set(agreed)) > 1:  # else chance agreement is 1 and kappa is 0/0
            kappa = float(cohen_kappa_score(theirs, agreed))
        found[reviewer] = ReviewerAgreement(kappa, agreement, len(theirs))
    return found


def gold_accuracy(
    votes: Iterable[tuple[Hashable, str, str]], answers: Mapping[Hashable, str]
) -> dict[str, GoldScore]:
    """Each reviewer's votes on gold items (those in ``answers``) against the known answers;
    reviewers without a gold vote are left out."""
    correct: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for item, reviewer, label in votes:
        if item in answers:
            total[reviewer] += 1
            correct[reviewer] += label == answers[item]
    return {reviewer: GoldScore(correct[reviewer], total[reviewer]) for reviewer in sorted(total)}


def items_per_hour(
    times: Sequence[datetime],
    *,
    idle_after: timedelta = timedelta(minutes=30),
    min_active: timedelta = timedelta(minutes=1),
) -> float | None:
    """A reviewer's pace: votes per hour of active work, from the times of their votes.

    Votes within ``idle_after`` of the one before form a working session; a longer gap is a
    break. A session's votes after its first instant are timed by the session's span (votes
    submitted together, as the grid page does, share one instant). Pace is timed votes over the
    summed spans, so breaks, and the unknown time spent before each session's first instant,
    count neither way. None when nothing is timed (one vote, one batch, or only breaks) or the
    timed work is shorter than ``min_active`` (two votes a second apart are no pace).

    Args:
        times: when each of one reviewer's votes was cast, in any order.
        idle_after: the shortest gap that counts as a break rather than work.
        min_active: the least timed work a pace is reported for.
    """
    ordered = sorted(times)
    sessions: list[list[datetime]] = []
    for moment in ordered:
        if sessions and moment - sessions[-1][-1] < idle_after:
            sessions[-1].append(moment)
        else:
            sessions.append([moment])
    timed = sum(sum(moment > session[0] for moment in session) for session in sessions)
    span = sum((session[-1] - session[0] for session in sessions), timedelta())
    hours = span.total_seconds() / 3600
    return timed / hours if timed and span >= min_active and hours > 0 else None

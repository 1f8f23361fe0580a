"""Champion / challenger: deploy a newly trained head only if it is not worse than the one serving.

Both heads are scored on samples neither has been fitted on, so the comparison is honest:

- the challenger by its out-of-fold predictions (each sample predicted by a fold model that did
  not train on it);
- the champion directly, but only on samples labelled after it was trained.

The first basis with enough samples decides: the unbiased ``holdout`` (labelled random-slice
captures the champion never saw), then ``new_samples`` (every sample the champion never saw).
With too few of either, the champion's recipe (head family and parameters) is cross-validated on
the challenger's very folds, and the two recipes are compared (``same_folds``).

"Worse" needs evidence, not just a lower number: the challenger is rejected when it trails by more
than the tolerance *and* a one-sided sign test (exact McNemar) on the samples where exactly one of
the two is right gives p < ``SIGNIFICANCE``. On the 10-20 samples a young function decides on,
one sample is 5-10 accuracy points, so a bare threshold rejected improvements on noise (and the
retrain then waited for another batch of annotations); a head trained on shuffled labels still
trails on 6 of 12 holdout samples with none back, p = 0.016.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy.stats import binomtest

SIGNIFICANCE = 0.05  # level of the one-sided sign test that calls a challenger worse


@dataclass(frozen=True)
class Comparison:
    """Accuracy of challenger and champion on one set of samples."""

    basis: str
    n: int
    challenger_accuracy: float
    champion_accuracy: float
    # samples only the champion got right, and only the challenger (the sign test's evidence)
    champion_only_right: int = 0
    challenger_only_right: int = 0

    def worse_p_value(self) -> float:
        """One-sided sign test: the chance that the champion alone is right this often or more
        if the two heads were equally good (1.0 when they never disagree on correctness)."""
        return _sign_test(self.champion_only_right, self.challenger_only_right)

    def better_p_value(self) -> float:
        """The same test the other way: the chance that the challenger alone is right this
        often or more if the two were equally good."""
        return _sign_test(self.challenger_only_right, self.champion_only_right)


def _sign_test(wins: int, losses: int) -> float:
    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)


@dataclass(frozen=True)
class DeployDecision:
    """Whether the challenger goes live, with every number that led there (stored per version)."""

    deploy: bool
    reason: str
    # Accuracy points the challenger may lose against the champion and still deploy.
    tolerance: float
    basis: str | None = None
    comparisons: list[Comparison] = field(default_factory=list)
    # How many current samples' predicted labels differ between champion and challenger.
    flips: int | None = None
    flip_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def pinned_to(self, version: int) -> DeployDecision:
        """This decision on a function pinned to ``version``: recorded, never promoted."""
        return replace(
            self,
            deploy=False,
            reason=f"function is pinned to version {version}; not promoted ({self.reason})",
        )

    def moved_from(self, space: int | None) -> DeployDecision:
        """This decision on a head trained on vectors of ``space``, which the function's vectors
        have left since: recorded, never deployed (it would answer in the wrong space)."""
        return replace(
            self,
            deploy=False,
            reason=(
                f"the function's vectors left space {space} while it trained; not deployed "
                f"({self.reason})"
            ),
        )


def accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(predicted == truth)) if len(truth) else float("nan")


def compare_on(
    basis: str,
    mask: np.ndarray,
    *,
    truth: np.ndarray,
    challenger_pred: np.ndarray,
    champion_pred: np.ndarray,
) -> Comparison:
    """Accuracy of both on the samples selected by ``mask`` (unscored samples are dropped).

    Args:
        basis: name of the sample set (``holdout``, ``new_samples``, ``same_folds``).
        mask: boolean selector over all samples.
        truth: label per sample.
        challenger_pred: challenger's out-of-fold prediction per sample (None where unscored).
        champion_pred: champion's prediction per sample.
    """
    scored = mask & np.array([p is not None for p in challenger_pred], dtype=bool)
    challenger_right = challenger_pred[scored] == truth[scored]
    champion_right = champion_pred[scored] == truth[scored]
    return Comparison(
        basis=basis,
        n=int(scored.sum()),
        challenger_accuracy=accuracy(challenger_pred[scored], truth[scored]),
        champion_accuracy=accuracy(champion_pred[scored], truth[scored]),
        champion_only_right=int(np.sum(champion_right & ~challenger_right)),
        challenger_only_right=int(np.sum(challenger_right & ~champion_right)),
    )


def decide(comparisons: list[Comparison], *, tolerance: float, min_samples: int) -> DeployDecision:
    """Deploy unless the first comparison with at least ``min_samples`` shows the challenger
    worse than the champion: behind by more than ``tolerance`` (accuracy, 0..1) with a one-sided
    sign test p below :data:`SIGNIFICANCE`.

    Args:
        comparisons: in order of preference (most trusted basis first).
        tolerance: allowed accuracy drop, e.g. 0.01 for one point.
        min_samples: smallest sample count a basis needs to decide.
    """
    for comparison in comparisons:
        if comparison.n < min_samples:
            continue
        drop = comparison.champion_accuracy - comparison.challenger_accuracy
        p_value = comparison.worse_p_value()
        deploy = drop <= tolerance or p_value >= SIGNIFICANCE
        if drop <= tolerance:
            verdict = "not worse than"
        elif deploy:
            verdict = "behind, but not significantly worse than,"
        else:
            verdict = "worse than"
        reason = (
            f"challenger {verdict} champion on {comparison.basis} (n={comparison.n}): "
            f"accuracy {comparison.challenger_accuracy:.3f} vs {comparison.champion_accuracy:.3f}, "
            f"tolerance {tolerance:.3f}; right where the other was wrong: champion "
            f"{comparison.champion_only_right}, challenger {comparison.challenger_only_right} "
            f"(one-sided sign test p={p_value:.3g}, worse needs < {SIGNIFICANCE})"
        )
        return DeployDecision(
            deploy=deploy,
            reason=reason,
            tolerance=tolerance,
            basis=comparison.basis,
            comparisons=comparisons,
        )
    return DeployDecision(
        deploy=True,
        reason=f"no comparison basis has {min_samples} or more samples; deployed",
        tolerance=tolerance,
        comparisons=comparisons,
    )


def count_flips(champion_head: Any, challenger_head: Any, vectors: np.ndarray) -> int:
    """How many of ``vectors`` get a different predicted label from the two heads."""
    if len(vectors) == 0:
        return 0
    before = predicted_labels(champion_head, vectors)
    after = predicted_labels(challenger_head, vectors)
    return int(np.sum(before != after))


def predicted_labels(head: Any, vectors: np.ndarray) -> np.ndarray:
    """The label each row of ``vectors`` gets from ``head`` (an object array of str)."""
    if len(vectors) == 0:
        return np.zeros(0, dtype=object)
    proba = head.predict_proba(vectors)
    classes = np.asarray([str(c) for c in head.classes_], dtype=object)
    return classes[np.argmax(proba, axis=1)]


def decide_over_zero_shot(
    comparisons: list[Comparison],
    *,
    min_samples: int,
    champion_name: str = "the zero-shot head",
) -> DeployDecision:
    """The deploy rule when the champion is the zero-shot head (version 0): the first trained
    head must *beat* it, i.e. be strictly more accurate on the deciding basis. A preset's
    version 0 (a pretrained classifier, fitted on none of the function's samples either) is
    judged by the same rule.

    The zero-shot head was fitted on no sample (its logit scale at most, which never changes a
    prediction), so its predictions on every labelled sample are as honest as the challenger's
    out-of-fold ones: the bases are the random-slice ``holdout`` when it has ``min_samples``,
    else every scored sample (``all_samples``), however few. Unlike the rule between trained
    heads there is no tolerance: a head that only ties with label names has not learnt anything
    the names did not already say. No comparable sample at all keeps the zero-shot head.

    Args:
        comparisons: ``holdout`` first, then ``all_samples``.
        min_samples: smallest sample count the holdout needs to decide.
        champion_name: version 0 as the reason names it.
    """
    usable = [c for c in comparisons if c.n >= min_samples] or [c for c in comparisons if c.n]
    if not usable:
        return DeployDecision(
            deploy=False,
            reason=f"no labelled sample to compare with {champion_name} on; it keeps serving",
            tolerance=0.0,
            comparisons=comparisons,
        )
    comparison = usable[0]
    deploy = comparison.challenger_accuracy > comparison.champion_accuracy
    verdict = "beats" if deploy else "does not beat"
    reason = (
        f"challenger {verdict} {champion_name} (version 0) on {comparison.basis} "
        f"(n={comparison.n}): accuracy {comparison.challenger_accuracy:.3f} vs "
        f"{comparison.champion_accuracy:.3f}; right where the other was wrong: version 0 "
        f"{comparison.champion_only_right}, challenger {comparison.challenger_only_right}"
    )
    return DeployDecision(
        deploy=deploy,
        reason=reason,
        tolerance=0.0,
        basis=comparison.basis,
        comparisons=comparisons,
    )


def decide_wins(comparison: Comparison) -> DeployDecision:
    """The deploy rule for a challenger that costs more to serve than the champion (a
    fine-tuned one): it deploys only when it *wins*, ahead on ``comparison`` with a one-sided
    sign test p below :data:`SIGNIFICANCE` on the samples where exactly one of the two is right.
    Anything less, a tie or a lead the test cannot tell from noise, keeps the champion.
    """
    p_value = comparison.better_p_value()
    deploy = (
        comparison.challenger_accuracy > comparison.champion_accuracy and p_value < SIGNIFICANCE
    )
    verdict = "wins over" if deploy else "does not win over"
    reason = (
        f"challenger {verdict} champion on {comparison.basis} (n={comparison.n}): accuracy "
        f"{comparison.challenger_accuracy:.3f} vs {comparison.champion_accuracy:.3f}; right "
        f"where the other was wrong: challenger {comparison.challenger_only_right}, champion "
        f"{comparison.champion_only_right} (one-sided sign test p={p_value:.3g}, a win needs "
        f"< {SIGNIFICANCE})"
    )
    return DeployDecision(
        deploy=deploy,
        reason=reason,
        tolerance=0.0,
        basis=comparison.basis,
        comparisons=[comparison],
    )

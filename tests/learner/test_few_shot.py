"""The few-shot head family that starts from the zero-shot text weights."""

from __future__ import annotations

import numpy as np
import pytest

from bench.few_shot import synthetic_task
from learner import (
    Candidate,
    DataShape,
    TextAnchoredLogistic,
    TextPrior,
    ZeroShotHead,
    default_candidates,
    train_head,
)
from learner.few_shot import TextAnchoredFamily


def toy_task(seed: int, *, shots: int, classes: int = 6, dim: int = 32):  # type: ignore[no-untyped-def]
    """The few-shot bench's synthetic task (``bench.few_shot``) with wider image clusters."""
    names, text, draw = synthetic_task(seed, classes=classes, dim=dim, noise=0.6)
    return names, text, draw(shots), draw(200)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_few_shot_head_beats_or_equals_zero_shot_on_a_toy_task(seed: int) -> None:
    names, text, (X, y), (X_test, y_test) = toy_task(seed, shots=8)
    zero_shot = ZeroShotHead(names, text)
    zero_shot_accuracy = np.mean(zero_shot.predict(X_test) == y_test)
    few_shot = TextAnchoredLogistic(TextPrior(tuple(names), text), anchor=10.0).fit(X, y)
    few_shot_accuracy = np.mean(few_shot.predict(X_test) == y_test)
    assert few_shot_accuracy >= zero_shot_accuracy
    assert few_shot.predict_proba(X_test).shape == (len(X_test), len(names))
    assert list(few_shot.classes_) == sorted(names)


def test_strong_anchor_stays_at_the_zero_shot_head() -> None:
    names, text, (X, y), (X_test, _) = toy_task(3, shots=2)
    zero_shot = ZeroShotHead(names, text)
    anchored = TextAnchoredLogistic(TextPrior(tuple(names), text), anchor=1e6).fit(X, y)
    assert (anchored.predict(X_test) == zero_shot.predict(X_test)).mean() > 0.98


def test_family_is_a_candidate_only_with_a_text_prior() -> None:
    names, text, (X, y), _ = toy_task(4, shots=6)
    shape = DataShape(n_train=24, min_class_count=4, n_classes=6, n_features=32)
    plain = default_candidates(shape)
    assert TextAnchoredFamily.name not in {c.name for c in plain}
    prior = TextPrior(tuple(names), text)
    with_prior = default_candidates(shape, prior=prior)
    anchored = [c for c in with_prior if c.name == TextAnchoredFamily.name]
    assert len(anchored) == len(TextAnchoredFamily.anchor_grid)
    assert all(c.prior is prior for c in anchored)
    # the recipe rebuilds only with the prior; its key and equality ignore the prior
    with pytest.raises(ValueError, match="text prior"):
        Candidate(TextAnchoredFamily.name, {"anchor": 10.0}).build()
    assert Candidate(TextAnchoredFamily.name, {"anchor": 10.0}, prior=prior) == anchored[1]
    result = train_head(X, y, text_prior=prior)
    assert TextAnchoredFamily.name in {score.candidate.name for score in result.cv_scores}


def test_prior_without_a_label_refuses_to_fit() -> None:
    prior = TextPrior(("a", "b"), np.eye(2, 4))
    with pytest.raises(ValueError, match="no weights"):
        TextAnchoredLogistic(prior).fit(np.eye(3, 4), ["a", "b", "c"])

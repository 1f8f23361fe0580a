"""Capture rules: validation in the policy, matching by mean similarity, reason rule:<name>."""

from __future__ import annotations

import numpy as np
import pytest

from capture import CaptureController, CapturePolicy, InvalidPolicy, VectorIndex
from capture.rules import DEFAULT_RULE_SIMILARITY, CaptureRule, RuleMatcher, rule_mean

DIM = 16


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def resolved(name: str, examples: list[np.ndarray], similarity: float | None = None) -> CaptureRule:
    ids = tuple(f"sample_{i}" for i in range(len(examples)))
    return CaptureRule(name, ids, similarity=similarity).with_vectors(np.stack(examples))


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"name": "night", "examples": []}], "must not be empty"),
        ([{"name": "night"}], "either examples or text"),
        ([{"name": "night", "examples": ["a"], "text": "x"}], "either examples or text"),
        ([{"name": "n", "examples": ["a"]}, {"name": "n", "examples": ["b"]}], "unique"),
        ([{"name": "bad name", "examples": ["a"]}], "name must be"),
        ([{"name": "n", "examples": ["a"], "similarity": 1.5}], "within (0, 1]"),
        ([{"name": "n", "examples": ["a"], "similarity": True}], "within (0, 1]"),
        ([{"name": "n", "examples": [3]}], "sample or item ids"),
        ([{"name": "n", "examples": ["a"], "colour": "red"}], "unknown capture rule key"),
        (["n"], "must be an object"),
        ("n", "must be a list"),
    ],
)
def test_invalid_rules_are_rejected(rules: object, message: str) -> None:
    with pytest.raises(InvalidPolicy, match=message.replace("(", r"\(").replace(")", r"\)")):
        CapturePolicy.from_dict({"rules": rules})


def test_rules_round_trip_and_public_view_hides_vectors() -> None:
    rule = resolved("night", [unit(1, 0), unit(1, 0.2)], similarity=0.7)
    policy = CapturePolicy(rules=(rule,))
    stored = policy.to_dict()
    assert CapturePolicy.from_dict(stored) == policy
    assert stored["rules"][0]["vectors"]
    assert policy.public_dict()["rules"] == [
        {"name": "night", "similarity": 0.7, "examples": ["sample_0", "sample_1"]}
    ]
    default = CapturePolicy.from_dict({"rules": [{"name": "n", "examples": ["a"]}]})
    assert default.rules[0].threshold == DEFAULT_RULE_SIMILARITY
    np.testing.assert_allclose(rule.matrix(), np.stack([unit(1, 0), unit(1, 0.2)]))


def test_matcher_uses_the_mean_similarity_and_the_rules_similarity() -> None:
    examples = [unit(1, 0.3), unit(1, -0.3)]  # mean along the first axis, length 0.958
    matcher = RuleMatcher([resolved("near", examples, similarity=0.95)])
    np.testing.assert_allclose(rule_mean(np.stack(examples)) @ unit(1), 0.958, atol=1e-3)
    assert matcher.match(unit(1)) == "near"  # mean similarity 0.958 (0.958 to either example)
    assert matcher.match(unit(1, 0.5)) is None  # mean of 0.985 and 0.728 = 0.857 < 0.95
    np.testing.assert_allclose(matcher.similarities(unit(1, 0.5)), [0.857], atol=1e-3)
    assert matcher.match(unit(0, 1)) is None
    assert RuleMatcher([]).match(unit(1)) is None
    assert RuleMatcher([CaptureRule("unresolved", ("a",))]).match(unit(1)) is None
    assert matcher.match(np.ones(DIM + 1, dtype=np.float32)) is None  # another backbone's vector


def test_spread_out_examples_ask_more_than_their_centroid() -> None:
    spread = resolved("spread", [unit(1, 1), unit(1, -1)], similarity=0.8)
    tight = resolved("tight", [unit(1, 0.1), unit(1, -0.1)], similarity=0.8)
    # unit(1) is the centroid of both pairs (cosine 1.0) but only 0.707 from each spread example
    assert RuleMatcher([spread]).match(unit(1)) is None
    assert RuleMatcher([tight]).match(unit(1)) == "tight"


def test_first_matching_rule_names_the_capture_and_budgets_apply() -> None:
    rules = (
        resolved("first", [unit(1)], similarity=0.9),
        resolved("second", [unit(1, 0.1)], similarity=0.9),
    )
    policy = CapturePolicy(rules=rules, random_rate=0.0, max_per_hour=2, max_per_day=5)
    controller = CaptureController(policy, rng=np.random.default_rng(0))
    index = VectorIndex(DIM, background_rebuild=False)
    confident = np.array([0.99, 0.01])
    decisions = []
    for i in range(4):
        vector = unit(1, 0.05 * i)
        decision = controller.decide(confident, ["a", "b"], vector, index, {"a": 100, "b": 100})
        controller.commit(decision)
        decisions.append(decision)
    assert [d.reason for d in decisions[:2]] == ["rule:first", "rule:first"]
    assert [d.skipped_because for d in decisions[2:]] == ["budget_hour", "budget_hour"]
    other = controller.decide(confident, ["a", "b"], unit(0, 1), index, {"a": 100, "b": 100})
    assert other.reason is None or not str(other.reason).startswith("rule:")


def test_rules_apply_before_any_head_too() -> None:
    policy = CapturePolicy(rules=(resolved("r", [unit(1)], 0.9),), random_rate=0.0)
    controller = CaptureController(policy, rng=np.random.default_rng(0))
    index = VectorIndex(DIM, background_rebuild=False)
    decision = controller.decide_cold_start(unit(1, 0.1), index)
    assert decision.reason == "rule:r" and decision.predicted_label is None
    controller.update_policy(CapturePolicy(random_rate=0.0))
    controller.rollback(decision)
    assert controller.decide_cold_start(unit(1, 0.1), index).reason != "rule:r"

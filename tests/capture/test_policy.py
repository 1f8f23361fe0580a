from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from capture import CapturePolicy, InvalidPolicy, UnknownStrategy, strategy_names


def test_defaults_round_trip_through_json() -> None:
    policy = CapturePolicy()
    assert policy.strategy == "margin" and policy.target_rate == 0.1 and policy.knn_k == 5
    assert CapturePolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy


def test_partial_dict_keeps_defaults_and_accepts_json_numbers() -> None:
    policy = CapturePolicy.from_dict(
        {"target_rate": 1, "max_per_hour": 20.0, "strategy": "entropy"}
    )
    assert policy.target_rate == 1.0 and isinstance(policy.target_rate, float)
    assert policy.max_per_hour == 20 and isinstance(policy.max_per_hour, int)
    assert policy.max_per_day == CapturePolicy().max_per_day


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"target_rate": 0}, "target_rate must be within (0, 1]"),
        ({"target_rate": 1.5}, "target_rate"),
        ({"target_rate": "high"}, "target_rate must be a finite number"),
        ({"target_rate": float("nan")}, "target_rate must be a finite number"),
        ({"max_per_hour": -1}, "max_per_hour must be >= 0"),
        ({"max_per_hour": 2.5}, "max_per_hour must be an integer"),
        ({"max_per_hour": True}, "max_per_hour must be an integer"),
        ({"random_rate": -0.1}, "random_rate"),
        ({"duplicate_similarity": 0}, "duplicate_similarity"),
        ({"novelty_weight": 2}, "novelty_weight"),
        ({"knn_k": 0}, "knn_k must be within [1, 100]"),
        ({"coverage_memory": -1}, "coverage_memory must be >= 0"),
        ({"window": 5}, "window"),
        ({"allow_new_labels": "yes"}, "allow_new_labels must be true or false"),
        ({"max_per_hour": 50, "max_per_day": 10}, "cannot exceed max_per_day"),
        ({"strategy": "coin_flip"}, "unknown uncertainty strategy 'coin_flip'"),
        ({"budget": 3}, "unknown capture policy setting(s): budget"),
    ],
)
def test_invalid_values_raise_a_clear_invalid_policy(data: dict, message: str) -> None:
    with pytest.raises(InvalidPolicy, match=re.escape(message)):
        CapturePolicy.from_dict(data)


def test_invalid_policy_is_a_value_error_and_direct_construction_is_validated() -> None:
    with pytest.raises(ValueError):
        CapturePolicy(target_rate=-1.0)
    with pytest.raises(UnknownStrategy):
        CapturePolicy(strategy="nope")
    with pytest.raises(InvalidPolicy, match="JSON object"):
        CapturePolicy.from_dict(["target_rate"])  # type: ignore[arg-type]


def test_every_setting_is_documented_with_a_comment() -> None:
    source = Path(__file__).parents[2].joinpath("capture", "policy.py").read_text()
    for setting in dataclasses.fields(CapturePolicy):
        assert re.search(rf"    # .+\n(    # .+\n)*    {setting.name}: ", source), setting.name


def test_builtin_strategies_are_registered() -> None:
    assert {"margin", "entropy", "least_confidence"} <= set(strategy_names())

"""Zero-shot heads from label texts: prompt ensembles, the head contract, the logit scale."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from learner import LabelText, ZeroShotHead, build_zero_shot_head
from learner.calibration import TemperatureScaledHead
from learner.zero_shot import PROMPT_TEMPLATES, label_fingerprint, label_text_weights


class RecordingTextEncoder:
    """Deterministic fake text tower: a seeded unit vector per prompt, calls recorded."""

    def __init__(self, dim: int = 16) -> None:
        self.dim = dim
        self.calls: list[list[str]] = []

    def __call__(self, prompts: list[str]) -> np.ndarray:
        self.calls.append(list(prompts))
        rows = [
            np.random.default_rng(zlib.crc32(p.encode())).normal(size=self.dim) for p in prompts
        ]
        vectors = np.asarray(rows, dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_each_label_is_the_normalised_mean_of_its_template_ensemble() -> None:
    encode = RecordingTextEncoder()
    labels = [LabelText("cat"), LabelText("dog", "a small dog on grass")]
    weights = label_text_weights(encode, labels)
    assert weights.shape == (2, encode.dim) and weights.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(weights, axis=1), 1.0, atol=1e-6)
    (prompts,) = encode.calls  # one batched call for every prompt of every label
    n = len(PROMPT_TEMPLATES)
    assert len(prompts) == 2 * n + 1 and prompts[-1] == "a small dog on grass"
    assert all("cat" in p for p in prompts[:n]) and all("dog" in p for p in prompts[n : 2 * n])
    cat_mean = encode(prompts[:n]).mean(axis=0)
    np.testing.assert_allclose(weights[0], cat_mean / np.linalg.norm(cat_mean), atol=1e-5)
    # the description moves the label's weight: half from the names, half from the description
    plain = label_text_weights(encode, [LabelText("cat"), LabelText("dog")])
    assert not np.allclose(plain[1], weights[1]) and np.allclose(plain[0], weights[0])


def test_head_follows_the_scikit_learn_contract() -> None:
    text = np.eye(3, 8, dtype=np.float32)
    head = ZeroShotHead(["a", "b", "c"], text)
    X = np.eye(3, 8) + 0.1
    proba = head.predict_proba(X)
    assert list(head.classes_) == ["a", "b", "c"]
    assert proba.shape == (3, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert list(head.predict(X)) == ["a", "b", "c"]
    # scale 100 on cosines: confident on clear inputs, as CLIP is
    assert proba.max() > 0.99
    # it composes with the calibration wrapper like any fitted head
    assert list(TemperatureScaledHead(head, 2.0).predict(X)) == ["a", "b", "c"]
    with pytest.raises(ValueError):
        ZeroShotHead(["a", "b"], text)  # one row per label
    with pytest.raises(ValueError):
        ZeroShotHead(["a", "a", "b"], text)


def test_fit_refits_the_logit_scale_without_changing_predictions() -> None:
    rng = np.random.default_rng(0)
    text = np.eye(2, 8)
    X = np.eye(2, 8)[rng.integers(0, 2, 40)] + rng.normal(scale=0.6, size=(40, 8))
    y = np.where(X[:, 0] > X[:, 1], "a", "b")
    y[:6] = np.where(y[:6] == "a", "b", "a")  # some wrong labels: 100 is overconfident here
    head = ZeroShotHead(["a", "b"], text)
    before = head.predict(X)
    head.fit(X, y)
    assert head.logit_scale < 100.0
    assert list(head.predict(X)) == list(before)
    # samples of labels the head does not know are ignored, not an error
    ZeroShotHead(["a", "b"], text).fit(X[:3], ["a", "zzz", "b"])


def test_fingerprint_changes_with_names_descriptions_and_backbone_only() -> None:
    labels = [LabelText("cat"), LabelText("dog")]
    base = label_fingerprint("tiny-clip", labels)
    assert label_fingerprint("tiny-clip", labels[::-1]) == base  # order does not matter
    assert label_fingerprint("tiny-clip", [LabelText("cat"), LabelText("puppy")]) != base
    assert label_fingerprint("tiny-clip", [LabelText("cat", "fluffy"), labels[1]]) != base
    assert label_fingerprint("clip:ViT-B-32/laion2b_s34b_b79k", labels) != base
    head = build_zero_shot_head(RecordingTextEncoder(), labels, backbone="tiny-clip")
    assert head.fingerprint == base and list(head.classes_) == ["cat", "dog"]


def test_a_first_trained_head_must_beat_the_zero_shot_head() -> None:
    from learner.champion import Comparison, decide_over_zero_shot

    small_holdout = Comparison("holdout", 4, 1.0, 0.5, 0, 2)
    every = Comparison("all_samples", 12, 0.75, 0.75, 1, 1)
    tie = decide_over_zero_shot([small_holdout, every], min_samples=10)
    assert not tie.deploy and tie.basis == "all_samples"  # a tie keeps version 0
    assert "does not beat" in tie.reason
    better = Comparison("all_samples", 12, 0.8333, 0.75, 0, 1)
    assert decide_over_zero_shot([small_holdout, better], min_samples=10).deploy
    big_holdout = Comparison("holdout", 10, 0.9, 1.0, 1, 0)  # decides before all_samples
    assert not decide_over_zero_shot([big_holdout, better], min_samples=10).deploy
    nothing = decide_over_zero_shot([Comparison("all_samples", 0, 0.0, 0.0)], min_samples=10)
    assert not nothing.deploy

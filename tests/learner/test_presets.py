"""Preset heads: ImageNet names as labels, the linear and zero-shot sources, subsets renormalised."""

from __future__ import annotations

import pickle

import numpy as np
import onnxruntime
import pytest

from learner.onnx_head import head_to_onnx
from learner.presets import (
    IMAGENET_LABELS,
    IMAGENET_NAMES,
    PresetHead,
    UnknownPresetLabels,
    imagenet_classifier_head,
    imagenet_zero_shot_head,
)
from store.labels import normalize_label_name

DIM = 16


def unit_rows(count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, DIM))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def head() -> PresetHead:
    rng = np.random.default_rng(0)
    return imagenet_classifier_head(
        rng.normal(size=(1000, DIM)), rng.normal(scale=0.1, size=1000), feature_norm=15.0
    )


def test_imagenet_names_are_unique_valid_label_names() -> None:
    assert len(IMAGENET_LABELS) == 1000 == len(set(IMAGENET_LABELS))
    assert all(normalize_label_name(name) == name for name in IMAGENET_LABELS)
    # the two names open_clip repeats: the first keeps it, the second is numbered
    assert IMAGENET_NAMES.count("missile") == 2 and IMAGENET_LABELS[744] == "missile (2)"
    assert IMAGENET_LABELS[657] == "missile" and IMAGENET_LABELS[837] == "sunglasses (2)"
    assert IMAGENET_LABELS[281] == "tabby cat"


def test_classifier_head_is_the_linear_classifier_on_rescaled_features(head: PresetHead) -> None:
    rng = np.random.default_rng(1)
    weight, bias = rng.normal(size=(1000, DIM)), rng.normal(scale=0.1, size=1000)
    preset = imagenet_classifier_head(weight, bias, feature_norm=15.0)
    features = 15.0 * unit_rows(4, seed=2)  # features of exactly the typical length
    logits = features @ weight.T + bias
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    # scale does not matter to the head: it sees unit rows
    assert np.allclose(preset.predict_proba(3.0 * features), expected, atol=1e-5)
    assert list(preset.classes_) == list(IMAGENET_LABELS)


def test_subset_is_the_full_softmax_renormalised_in_the_order_asked(head: PresetHead) -> None:
    X = unit_rows(5, seed=3)
    subset = ["Siamese cat", "tabby cat", "goldfish"]
    small = head.restricted(subset)
    assert list(small.classes_) == subset
    full = head.predict_proba(X)
    columns = [IMAGENET_LABELS.index(name) for name in subset]
    expected = full[:, columns] / full[:, columns].sum(1, keepdims=True)
    assert np.allclose(small.predict_proba(X), expected, atol=1e-9)
    assert np.allclose(small.predict_proba(X).sum(1), 1.0)


def test_subset_refusals(head: PresetHead) -> None:
    with pytest.raises(UnknownPresetLabels) as raised:
        head.restricted(["tabby cat", "unicorn", "tabby"])
    assert raised.value.names == ["unicorn", "tabby"]
    with pytest.raises(ValueError, match="at least 2"):
        head.restricted(["tabby cat"])
    with pytest.raises(ValueError, match="unique"):
        head.restricted(["tabby cat", "tabby cat"])


def test_fit_changes_nothing_and_the_head_pickles(head: PresetHead) -> None:
    X = unit_rows(6, seed=4)
    before = head.predict_proba(X)
    assert head.fit(X, ["tabby cat"] * 6) is head
    copy = pickle.loads(pickle.dumps(head.restricted(["tabby cat", "tiger cat"])))
    assert isinstance(copy, PresetHead) and list(copy.classes_) == ["tabby cat", "tiger cat"]
    assert np.array_equal(head.predict_proba(X), before)
    assert copy.preset == "imagenet" and copy.source == "classifier"


def test_zero_shot_head_embeds_only_the_subset_names() -> None:
    prompts_seen: list[str] = []

    def encode_text(prompts: list[str]) -> np.ndarray:
        prompts_seen.extend(prompts)
        rows = np.random.default_rng(len(prompts)).normal(size=(len(prompts), DIM))
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    head = imagenet_zero_shot_head(encode_text, ["missile (2)", "tabby cat"])
    assert list(head.classes_) == ["missile (2)", "tabby cat"] and head.source == "zero_shot"
    assert any("missile" in p for p in prompts_seen) and not any("(2)" in p for p in prompts_seen)
    assert np.allclose(np.linalg.norm(head.coef_, axis=1), 100.0, atol=1e-3)  # CLIP's scale
    with pytest.raises(UnknownPresetLabels):
        imagenet_zero_shot_head(encode_text, ["tabby"])


def test_onnx_form_matches(head: PresetHead) -> None:
    small = head.restricted(["tabby cat", "tiger cat", "goldfish", "great white shark"])
    X = unit_rows(7, seed=5).astype(np.float32)
    session = onnxruntime.InferenceSession(head_to_onnx(small, DIM, opset=18).SerializeToString())
    got = np.asarray(session.run(["probabilities"], {"features": X})[0])
    assert np.abs(got - small.predict_proba(X)).max() < 1e-4


def test_a_clip_preset_lends_its_text_rows_to_few_shot_heads(head: PresetHead) -> None:
    assert head.text_prior() is None  # a linear classifier's rows are no text embeddings

    def encode_text(prompts: list[str]) -> np.ndarray:
        return unit_rows(len(prompts), seed=len(prompts))

    clip = imagenet_zero_shot_head(encode_text, ["tabby cat", "goldfish", "missile (2)"])
    prior = clip.text_prior()
    assert prior is not None and prior.labels == ("tabby cat", "goldfish", "missile (2)")
    assert np.allclose(prior.weights_for(["goldfish"])[0] * 100.0, clip.coef_[1], atol=1e-3)

"""Fine-tuning a tail and head: early stopping keeps the best epoch, cancelling keeps what was
best so far, BatchNorm statistics stay, and the guard deploys a challenger only on a win."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from learner import NotEnoughData
from learner.champion import decide_wins
from learner.finetune import TuneConfig, TunedHead, TunedModel, fine_tune
from tests.learner.test_champion import comparison


def tail() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(4, 8, 1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    )


def activations(n: int, seed: int, shift: float) -> tuple[torch.Tensor, list[str]]:
    """``n`` activation maps of three labels; each label raises one channel by ``shift``."""
    rng = np.random.default_rng(seed)
    labels = [("a", "b", "c")[i % 3] for i in range(n)]
    maps = rng.normal(size=(n, 4, 3, 3)).astype(np.float32)
    for row, label in enumerate(labels):
        maps[row, "abc".index(label)] += shift
    return torch.from_numpy(maps).to(torch.float16), labels


def test_a_learnable_task_is_learnt_and_the_best_epoch_is_kept() -> None:
    originals, labels = activations(90, 0, 1.0)
    views = [originals + 0.1 * torch.randn(originals.shape).to(torch.float16)]
    test, test_labels = activations(300, 1, 1.0)
    config = TuneConfig(views=1, max_epochs=6, patience=2, batch_size=16, lr_blocks=1e-2)
    seen: list[dict[str, float]] = []

    result = fine_tune(tail(), originals, views, labels, config, progress=seen.append)

    assert np.mean(result.model.predict(test) == np.asarray(test_labels)) > 0.8
    assert [record["epoch"] for record in seen] == [r["epoch"] for r in result.epochs[1:]]
    best = result.epochs[result.best_epoch]["val_accuracy"]
    assert best == max(record["val_accuracy"] for record in result.epochs)
    assert result.train_images + result.val_images == 90 and result.val_images >= 3
    assert result.stopped in ("patience", "max_epochs")
    assert list(result.model.classes_) == ["a", "b", "c"]
    probabilities = result.model.predict_proba(test)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)


def test_mixup_and_label_smoothing_still_learn_and_repeat_exactly() -> None:
    originals, labels = activations(90, 0, 1.0)
    test, test_labels = activations(300, 1, 1.0)
    config = TuneConfig(
        views=0, max_epochs=4, batch_size=16, lr_blocks=1e-2, label_smoothing=0.1, mixup=0.4
    )

    first = fine_tune(tail(), originals, [], labels, config)
    again = fine_tune(tail(), originals, [], labels, config)
    plain = fine_tune(tail(), originals, [], labels, replace(config, label_smoothing=0, mixup=0))

    assert np.mean(first.model.predict(test) == np.asarray(test_labels)) > 0.8
    assert [e["loss"] for e in first.epochs[1:]] == [e["loss"] for e in again.epochs[1:]]
    # smoothed, mixed targets cannot be fitted to the plain recipe's loss
    assert first.epochs[-1]["loss"] > plain.epochs[-1]["loss"]


def test_batchnorm_keeps_its_statistics() -> None:
    originals, labels = activations(60, 2, 1.0)
    untuned = tail()
    before = untuned[1].running_mean.clone(), untuned[1].running_var.clone()
    result = fine_tune(untuned, originals, [], labels, TuneConfig(views=0, max_epochs=2))
    torch.testing.assert_close(result.model.tail[1].running_mean, before[0])
    torch.testing.assert_close(result.model.tail[1].running_var, before[1])


def test_cancelling_keeps_the_untuned_start() -> None:
    originals, labels = activations(60, 3, 1.0)
    reference = fine_tune(tail(), originals, [], labels, TuneConfig(views=0, max_epochs=0))
    cancelled = fine_tune(
        tail(), originals, [], labels, TuneConfig(views=0), should_stop=lambda: True
    )
    assert cancelled.stopped == "cancelled" and cancelled.best_epoch == 0
    assert len(cancelled.epochs) == 2  # epoch 0, then the one cancelled before its first step
    np.testing.assert_allclose(
        cancelled.model.predict_proba(originals), reference.model.predict_proba(originals)
    )


def test_the_untuned_start_is_a_fitted_head_not_chance() -> None:
    originals, labels = activations(150, 4, 2.0)
    start = fine_tune(tail(), originals, [], labels, TuneConfig(views=0, max_epochs=0))
    assert start.epochs[0]["val_accuracy"] > 0.6  # three labels: chance is a third


def test_bad_input_is_refused() -> None:
    originals, labels = activations(30, 5, 1.0)
    with pytest.raises(NotEnoughData):
        fine_tune(tail(), originals, [], ["a"] * 30, TuneConfig(views=0))
    with pytest.raises(NotEnoughData):
        fine_tune(tail(), originals, [], ["a"] * 29 + ["b"], TuneConfig(views=0))
    with pytest.raises(ValueError, match="expected 2 views"):
        fine_tune(tail(), originals, [originals], labels, TuneConfig(views=2))


@pytest.mark.parametrize(
    ("champion_only", "challenger_only", "deploys"),
    [(0, 0, False), (3, 5, False), (2, 12, True), (12, 2, False)],
)
def test_a_costlier_challenger_deploys_only_on_a_significant_win(
    champion_only: int, challenger_only: int, deploys: bool
) -> None:
    found = comparison(40, champion_only=champion_only, challenger_only=challenger_only, both=20)
    decision = decide_wins(found)
    assert decision.deploy is deploys
    assert ("wins over" if deploys else "does not win over") in decision.reason
    if deploys:
        assert found.better_p_value() < 0.05


def test_a_refit_trains_every_image_for_the_epochs_early_stopping_kept() -> None:
    originals, labels = activations(60, 6, 1.0)
    config = TuneConfig(views=0, max_epochs=4, patience=4, lr_blocks=1e-2)
    early = fine_tune(tail(), originals, [], labels, config)
    refit_config = early.refit_config()
    refit = fine_tune(tail(), originals, [], labels, refit_config)

    assert refit_config.val_fraction == 0 and refit_config.max_epochs == early.best_epoch
    assert refit.train_images == 60 and refit.val_images == 0
    assert len(refit.epochs) == 1 + early.best_epoch and refit.best_epoch == early.best_epoch
    assert refit.stopped == "max_epochs"


def small_tuned_model() -> TunedModel:
    """A tuned model on this file's small tail, its head far from uniform."""
    model = TunedModel(tail(), ["a", "b", "c"], 8, tuned_blocks=1).eval()
    with torch.no_grad():
        model.head.weight.normal_(0.0, 3.0)
    return model


def lite0_tuned_model() -> TunedModel:
    """A tuned model on EfficientNet-Lite0's last block, with weights a rebuild cannot guess."""
    from embeddings.tuning import split_tower

    model = TunedModel(split_tower("efficientnet-lite0", 1).tail, ["bag", "coat"], 1280, 1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    return model.eval()


def lite0_activations(n: int) -> torch.Tensor:
    return torch.randn(n, 192, 7, 7, generator=torch.Generator().manual_seed(0))


def test_a_tuned_head_without_a_classifier_answers_with_its_linear_layer() -> None:
    model = small_tuned_model()
    head = TunedHead("efficientnet-lite0", model)
    originals, _ = activations(12, 0, 1.0)
    features = head.run(originals)

    with torch.inference_mode():
        expected = torch.softmax(model.head(torch.from_numpy(features)), dim=1).numpy()
    proba = head.predict_proba(features)

    assert head.classifier is None and list(head.classes_) == ["a", "b", "c"]
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba, expected, rtol=1e-6)
    np.testing.assert_allclose(proba, model.predict_proba(originals), atol=1e-6)


def test_a_tuned_head_with_a_classifier_answers_with_the_classifier() -> None:
    from sklearn.linear_model import LogisticRegression

    model = small_tuned_model()
    plain = TunedHead("efficientnet-lite0", model)
    originals, labels = activations(60, 1, 1.0)
    features = plain.run(originals)
    renamed = [{"a": "owl", "b": "fox", "c": "elk"}[label] for label in labels]
    classifier = LogisticRegression().fit(features, renamed)

    head = plain.with_classifier(classifier)
    proba = head.predict_proba(features)

    assert head.spec == plain.spec and head.model is model and head.classifier is classifier
    assert plain.classifier is None  # the head it came from is unchanged
    assert list(head.classes_) == ["elk", "fox", "owl"]
    assert proba.dtype == np.float64
    np.testing.assert_allclose(proba, classifier.predict_proba(features))
    assert not np.allclose(proba, plain.predict_proba(features), atol=1e-2)


def test_a_tuned_head_round_trips_through_a_verified_artifact(tmp_path) -> None:
    from embeddings.tuning import NotTunable
    from learner.artifacts import ModelStore

    model = lite0_tuned_model()
    head = TunedHead("efficientnet-lite0", model)
    store = ModelStore(tmp_path)
    digest = store.save("fn", 3, head, {"kind": "tuned"})

    again, meta = store.load("fn", 3, sha256=digest)

    inputs = lite0_activations(2)
    np.testing.assert_allclose(
        again.predict_proba(again.run(inputs)), model.predict_proba(inputs), atol=1e-6
    )
    assert again.tuned_blocks == 1 and list(again.classes_) == ["bag", "coat"]
    assert again.classifier is None
    assert meta == {"kind": "tuned"} and not any(p.requires_grad for p in again.model.parameters())
    with pytest.raises(NotTunable):
        TunedModel.from_state("tiny-clip", model.to_state())


def test_a_pickled_tuned_head_keeps_its_classifier() -> None:
    from sklearn.linear_model import LogisticRegression

    plain = TunedHead("efficientnet-lite0", lite0_tuned_model())
    features = plain.run(lite0_activations(20))
    head = plain.with_classifier(LogisticRegression().fit(features, ["shoe", "bag"] * 10))

    again = pickle.loads(pickle.dumps(head))

    assert isinstance(again.classifier, LogisticRegression)
    assert list(again.classes_) == ["bag", "shoe"]
    np.testing.assert_allclose(again.predict_proba(features), head.predict_proba(features))


def test_an_older_artifact_with_a_frozen_head_loads_without_it() -> None:
    from sklearn.linear_model import LogisticRegression

    model = lite0_tuned_model()
    frozen_vectors = np.random.default_rng(0).normal(size=(20, 8))
    state = {  # what a TunedHead pickled before tuned vector spaces
        "spec": "efficientnet-lite0",
        "model": model.to_state(),
        "frozen": LogisticRegression().fit(frozen_vectors, ["coat", "bag"] * 10),
    }
    old = TunedHead.__new__(TunedHead)
    old.__setstate__(state)

    inputs = lite0_activations(2)
    assert old.classifier is None and not hasattr(old, "frozen")
    assert list(old.classes_) == ["bag", "coat"]
    np.testing.assert_allclose(
        old.predict_proba(old.run(inputs)), model.predict_proba(inputs), atol=1e-6
    )


def test_the_encoder_gives_a_tuned_function_its_own_vectors() -> None:
    from PIL import Image

    from embeddings import BatchingEncoder, load_backbone
    from embeddings.tower_options import TowerOptions
    from embeddings.tuning import SharedTrunk, split_tower
    from learner.finetune import TunedModel

    backbone = load_backbone("efficientnet-lite0", device="cpu", tower=TowerOptions("fp32"))
    model = TunedModel(split_tower("efficientnet-lite0", 2).tail, ["a", "b"], 1280, 2).eval()
    with torch.no_grad():
        for parameter in model.tail.parameters():
            parameter.mul_(1.05)  # no longer the frozen tail
    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)) for _ in "abc"]

    with BatchingEncoder(backbone, max_batch=8) as encoder:
        tuned = encoder.encode_tuned(pictures, model)
        frozen = encoder.encode(pictures)
    batch = torch.stack([backbone.preprocess(p) for p in pictures])
    activations = SharedTrunk("efficientnet-lite0", 2, batch).activations(batch)

    with torch.inference_mode():
        expected = model.features(activations).numpy()
    np.testing.assert_allclose(tuned, expected, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(tuned, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(tuned, frozen, atol=1e-2)  # its own space


def test_the_cost_of_an_epoch_is_measured_on_a_copy_and_scaled_to_a_run() -> None:
    from learner.finetune import estimated_tuning_seconds, seconds_per_image_epoch

    tail = torch.nn.Sequential(
        torch.nn.Conv2d(4, 8, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )
    before = [p.clone() for p in tail.parameters()]
    config = TuneConfig(batch_size=8, views=2, max_epochs=10, val_fraction=0.15, mixup=0.4)

    per_image = seconds_per_image_epoch(tail, torch.randn(3, 4, 5, 5), config)

    assert 0 < per_image < 1
    assert all(torch.equal(p, q) for p, q in zip(tail.parameters(), before, strict=True))
    # 1,000 labels, 20% held out, 15% for validation, each with 2 views, 10 epochs
    assert estimated_tuning_seconds(1000, config, 0.01, holdout=0.2) == pytest.approx(204.0)

"""Fine-tuned challengers: a backbone's last blocks and a new head, tuned on a function's images.

Frozen features stop improving past a point (the head on EfficientNet-Lite0 vectors stays near 89%
on Fashion-MNIST with every label). A tuned challenger trains the backbone's tail
(:class:`embeddings.tuning.SplitTower`) and a linear head on the trunk's activations of each
labelled image and of its augmented views, keeping the epoch that scores best on a validation
split (early stopping). The head is started from a logistic regression fitted on the tail's own
frozen features, so epoch 0, the untuned tail, is a frozen head, and tuning has to beat it to be
kept at all.

It then has to beat the frozen champion on samples neither was fitted on
(:func:`learner.champion.decide_wins`): a tuned function costs more to serve, so it deploys only
on evidence that it is better, not merely on no evidence that it is worse.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from learner.errors import NotEnoughData


@dataclass(frozen=True)
class TuneConfig:
    """How a challenger is tuned (defaults: ``python -m bench.finetune`` on Fashion-MNIST).

    Attributes:
        tuned_blocks: trailing backbone blocks tuned (the rest is the frozen trunk).
        views: augmented views per labelled image besides the image itself.
        max_epochs: passes over the training split at most.
        patience: epochs without a better validation accuracy before stopping.
        batch_size: images (or views) per step.
        lr_blocks: AdamW learning rate of the tuned blocks.
        lr_head: AdamW learning rate of the head.
        weight_decay: AdamW weight decay.
        val_fraction: share of the labelled images kept for early stopping (with their views);
            0: no validation, ``max_epochs`` epochs (a refit on every image with the epoch count
            an early-stopped run found, :meth:`TuneResult.refit_config`).
        label_smoothing: weight of the uniform distribution mixed into each target (0: none).
        mixup: Beta(a, a) concentration of mixup on the trunk's activations: each batch is
            blended with a shuffled copy of itself, and so are its targets (0: none).
        seed: seeds the split, the batch order, the mixup draws and torch's initialisation.
    """

    tuned_blocks: int = 3
    views: int = 2
    max_epochs: int = 10
    patience: int = 3
    batch_size: int = 32
    lr_blocks: float = 1e-4
    lr_head: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.15
    label_smoothing: float = 0.0
    mixup: float = 0.0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def refit(self, epochs: int) -> TuneConfig:
        """This recipe on every image: no validation split, ``epochs`` epochs."""
        return replace(self, val_fraction=0.0, max_epochs=epochs)


class TunedModel(torch.nn.Module):
    """A tuned tail and its head: trunk activations in, class probabilities out.

    The head is linear on the unit-length pooled features, as a frozen head is on winnow's
    vectors. ``classes_`` names the probability columns, as a scikit-learn head's does.
    """

    def __init__(
        self, tail: torch.nn.Module, classes: Sequence[str], dim: int, tuned_blocks: int
    ) -> None:
        super().__init__()
        self.tail = tail
        self.head = torch.nn.Linear(dim, len(classes))
        self.classes_ = np.asarray(list(classes), dtype=object)
        self.tuned_blocks = tuned_blocks

    def to_state(self) -> dict[str, Any]:
        """Plain data that :meth:`from_state` rebuilds this model from: the cut, the labels and
        the weights as numpy arrays (an artifact holds no pickled torch module, so it loads
        whatever version of timm built the network)."""
        return {
            "tuned_blocks": self.tuned_blocks,
            "classes": [str(c) for c in self.classes_],
            "dim": self.head.in_features,
            "weights": {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()},
        }

    @classmethod
    def from_state(cls, spec: str, state: dict[str, Any]) -> TunedModel:
        """The model :meth:`to_state` described, its tail cut from ``spec``'s network.

        Raises:
            NotTunable: ``spec`` cannot be cut there.
            RuntimeError: the weights do not fit that tail (another backbone's).
        """
        from embeddings.tuning import split_tower

        tail = split_tower(spec, state["tuned_blocks"]).tail
        model = cls(tail, state["classes"], state["dim"], state["tuned_blocks"])
        model.load_state_dict({k: torch.from_numpy(v) for k, v in state["weights"].items()})
        return model.requires_grad_(False).eval()

    def features(self, activations: torch.Tensor) -> torch.Tensor:
        """Unit-length pooled features of trunk activations (moved to the model's device)."""
        pooled = self.tail(activations.to(self.head.weight.device, torch.float32))
        return torch.nn.functional.normalize(pooled, dim=1)

    def run(self, activations: torch.Tensor) -> np.ndarray:
        """The tuned function's vectors: unit features of trunk activations, as float32 rows
        (what :meth:`embeddings.BatchingEncoder.encode_tuned` asks of a tail). A tuned function
        captures, searches and retrains on these, not on the frozen backbone's vectors
        (``python -m bench.tuned_space``)."""
        with torch.inference_mode():
            return self.features(activations).cpu().numpy().astype(np.float32)

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.features(activations))
        return logits

    def predict_proba(self, activations: torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """Class probabilities ``(n, classes)`` for trunk activations ``(n, C, H, W)``."""
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                parts = [
                    torch.softmax(self(activations[start : start + batch_size]), dim=1)
                    for start in range(0, activations.shape[0], batch_size)
                ]
        finally:
            self.train(was_training)
        return torch.cat(parts).cpu().numpy().astype(np.float64)

    def predict(self, activations: torch.Tensor) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(activations), axis=1)])

    def nbytes(self) -> int:
        """Memory of the tuned weights (what a deployed tuned function adds to a replica)."""
        return sum(t.numel() * t.element_size() for t in self.state_dict().values())


TUNED_HEAD = "finetuned"
"""The ``head`` a tuned version's record names (its recipe: :func:`fine_tune`)."""


class TunedHead:
    """A version in a tuned vector space: its tower's tuned tail and the head that answers on
    the tail's features.

    An invoke runs the shared trunk once and this tail on its activations
    (:meth:`embeddings.BatchingEncoder.encode_tuned`, through :meth:`run`). The stored vectors
    of a function such a version serves (samples, queue items) are these features too, the
    space ``python -m bench.tuned_space`` chose, so :meth:`predict_proba` (the
    :class:`learner.deploy.ServedHead` protocol) answers every question, an invoke's and those
    asked of stored vectors, on rows :meth:`run` gives. The head is the tuned linear layer, or a
    scikit-learn style ``classifier`` fitted on the space's stored features (a retrain between
    tunes), which then answers instead.

    Pickled as plain data (:meth:`TunedModel.to_state`), so an artifact loads whatever version
    of timm built the network.

    Args:
        spec: the backbone the tail was cut from.
        model: the tuned tail and its linear head.
        classifier: a fitted head on this tail's features that answers instead of the linear
            layer; None: the linear layer answers.
    """

    def __init__(self, spec: str, model: TunedModel, classifier: Any | None = None) -> None:
        self.spec = spec
        self.model = model
        self.classifier = classifier

    @property
    def classes_(self) -> np.ndarray:
        if self.classifier is not None:
            return np.asarray(self.classifier.classes_)
        return self.model.classes_

    @property
    def tuned_blocks(self) -> int:
        return self.model.tuned_blocks

    @property
    def tail(self) -> torch.nn.Module:
        """The tuned tail (:class:`embeddings.tuning.TunedTail`): activations to pooled features."""
        return self.model.tail

    def run(self, activations: torch.Tensor) -> np.ndarray:
        """The tail's unit features of trunk activations (:class:`embeddings.tuning.TunedTail`)."""
        return self.model.run(activations)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, in :attr:`classes_` order, for feature rows in this tail's space
        (what :meth:`run` gives, and what the function stores)."""
        if self.classifier is not None:
            return np.asarray(self.classifier.predict_proba(X), dtype=np.float64)
        with torch.inference_mode():
            logits = self.model.head(torch.as_tensor(np.asarray(X), dtype=torch.float32))
            return torch.softmax(logits, dim=1).numpy().astype(np.float64)

    def with_classifier(self, classifier: Any) -> TunedHead:
        """The same tail answering with ``classifier``, fitted on this tail's features."""
        return TunedHead(self.spec, self.model, classifier)

    def nbytes(self) -> int:
        """The tuned weights' bytes: what serving this version adds to a replica."""
        return self.model.nbytes()

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "model": self.model.to_state(), "classifier": self.classifier}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.spec = state["spec"]
        self.model = TunedModel.from_state(state["spec"], state["model"])
        self.classifier = state.get("classifier")  # an older artifact's "frozen" head is unused


@dataclass
class TuneResult:
    """A tuned model and the record of how it got there."""

    model: TunedModel
    config: TuneConfig
    best_epoch: int  # 0: the untuned tail with its fitted head won
    stopped: str  # "patience", "max_epochs" or "cancelled"
    epochs: list[dict[str, float]] = field(default_factory=list)
    train_images: int = 0
    val_images: int = 0
    seconds: float = 0.0

    def refit_config(self) -> TuneConfig:
        """The config that retrains this recipe on every image: no validation split, the
        number of epochs early stopping kept."""
        return self.config.refit(self.best_epoch)

    def summary(self) -> dict[str, Any]:
        """JSON-safe record (no weights)."""
        return {
            "config": self.config.to_dict(),
            "best_epoch": self.best_epoch,
            "best_val_accuracy": self.epochs[self.best_epoch]["val_accuracy"],
            "stopped": self.stopped,
            "epochs": self.epochs,
            "train_images": self.train_images,
            "val_images": self.val_images,
            "seconds": self.seconds,
        }


def fine_tune(
    tail: torch.nn.Module,
    originals: torch.Tensor,
    views: Sequence[torch.Tensor],
    labels: Sequence[str],
    config: TuneConfig = TuneConfig(),
    *,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[dict[str, float]], None] | None = None,
    device: torch.device | None = None,
) -> TuneResult:
    """Tune ``tail`` and a new head on trunk activations, keeping the best validation epoch.

    Args:
        tail: a :class:`embeddings.tuning.SplitTower`'s tail (changed in place; pass a copy to
            keep it).
        originals: trunk activations of the labelled images, ``(n, C, H, W)``.
        views: for each of ``config.views`` augmented views, the activations of every image's
            view, each shaped like ``originals`` and in the same order.
        labels: the images' labels.
        config: see :class:`TuneConfig`.
        should_stop: asked between steps; True cancels (the best epoch so far is kept).
        progress: called after each epoch with its record (epoch, loss, accuracy, seconds).
        device: where the tail and head train (None: the CPU); the activations stay where they
            are and each batch is moved. The returned model is on the CPU.

    Raises:
        NotEnoughData: fewer than two labels, or a label with fewer than two images.
        ValueError: ``views`` does not match ``config.views`` or ``originals``.
    """
    started = time.perf_counter()
    truth = np.asarray(list(labels), dtype=object)
    if len(views) != config.views or any(v.shape != originals.shape for v in views):
        raise ValueError(f"expected {config.views} views shaped {tuple(originals.shape)}")
    classes, counts = np.unique(truth.astype(str), return_counts=True)
    if len(classes) < 2 or counts.min() < 2:
        raise NotEnoughData("fine-tuning needs two labels or more, each on two images or more")
    torch.manual_seed(config.seed)
    targets = torch.as_tensor(np.searchsorted(classes, truth.astype(str)), dtype=torch.long)
    fit_rows, val_rows = _split(targets.numpy(), config)
    model = TunedModel(
        tail, [str(c) for c in classes], _width(tail, originals[:1]), config.tuned_blocks
    )
    _start_head(model, originals[fit_rows], targets[fit_rows])
    model.to(device or torch.device("cpu"))  # the activations stay on the CPU, a batch moves
    optimiser = torch.optim.AdamW(
        [
            {"params": model.tail.parameters(), "lr": config.lr_blocks},
            {"params": model.head.parameters(), "lr": config.lr_head},
        ],
        weight_decay=config.weight_decay,
    )
    inputs = torch.cat([originals[fit_rows], *(view[fit_rows] for view in views)])
    answers = targets[fit_rows].repeat(1 + len(views))
    val_inputs, val_truth = originals[val_rows], targets[val_rows].numpy()
    generator = torch.Generator().manual_seed(config.seed)

    record = {
        "epoch": 0.0,
        "loss": float("nan"),
        "val_accuracy": _accuracy(model, val_inputs, val_truth),
    }
    epochs, best_epoch, best_state = [record], 0, copy.deepcopy(model.state_dict())
    stopped = "max_epochs"
    for epoch in range(1, config.max_epochs + 1):
        epoch_started = time.perf_counter()
        loss, cancelled = _epoch(model, optimiser, inputs, answers, config, generator, should_stop)
        record = {
            "epoch": float(epoch),
            "loss": loss,
            "val_accuracy": _accuracy(model, val_inputs, val_truth),
            "seconds": time.perf_counter() - epoch_started,
        }
        epochs.append(record)
        if progress is not None:
            progress(record)
        if cancelled:
            stopped = "cancelled"
            break
        if not len(val_rows) or record["val_accuracy"] > epochs[best_epoch]["val_accuracy"]:
            best_epoch, best_state = epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= config.patience:
            stopped = "patience"
            break
    model.load_state_dict(best_state)
    model.cpu().eval()
    return TuneResult(
        model=model,
        config=config,
        best_epoch=best_epoch,
        stopped=stopped,
        epochs=epochs,
        train_images=len(fit_rows),
        val_images=len(val_rows),
        seconds=time.perf_counter() - started,
    )


def _split(targets: np.ndarray, config: TuneConfig) -> tuple[np.ndarray, np.ndarray]:
    """Stratified training and validation rows (validation: at least one image per label)."""
    rows = np.arange(len(targets))
    if config.val_fraction <= 0:
        return rows, rows[:0]
    n_val = max(len(np.unique(targets)), round(config.val_fraction * len(targets)))
    fit_rows, val_rows = train_test_split(
        rows, test_size=n_val, stratify=targets, random_state=config.seed
    )
    return np.sort(fit_rows), np.sort(val_rows)


def _width(tail: torch.nn.Module, example: torch.Tensor) -> int:
    with torch.inference_mode():
        return int(tail.eval()(example.to(torch.float32)).shape[1])


def _start_head(model: TunedModel, activations: torch.Tensor, targets: torch.Tensor) -> None:
    """The head set to a logistic regression on the untuned tail's unit features."""
    model.eval()
    with torch.inference_mode():
        features = (
            torch.cat(
                [model.features(activations[i : i + 256]) for i in range(0, len(activations), 256)]
            )
            .cpu()
            .numpy()
        )
    fitted = LogisticRegression(C=10.0, max_iter=2000).fit(features, targets.numpy())
    rows, intercepts = fitted.coef_, fitted.intercept_
    if rows.shape[0] == 1:  # scikit-learn's binary form: one row, for the second class
        rows, intercepts = np.vstack([-rows, rows]) / 2, np.array([-1.0, 1.0]) * intercepts[0] / 2
    coef = np.zeros(tuple(model.head.weight.shape))
    intercept = np.full(model.head.bias.shape[0], -10.0)  # a label absent from the fit rows
    coef[fitted.classes_], intercept[fitted.classes_] = rows, intercepts
    with torch.no_grad():
        model.head.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
        model.head.bias.copy_(torch.as_tensor(intercept, dtype=torch.float32))


def _epoch(
    model: TunedModel,
    optimiser: torch.optim.Optimizer,
    inputs: torch.Tensor,
    answers: torch.Tensor,
    config: TuneConfig,
    generator: torch.Generator,
    should_stop: Callable[[], bool] | None,
) -> tuple[float, bool]:
    """One pass in random order; BatchNorm keeps its ImageNet statistics (batches of a few
    dozen images of a few classes would move them far). Returns the mean loss and whether
    ``should_stop`` cancelled it."""
    _train_mode(model)
    order = torch.randperm(len(inputs), generator=generator)
    losses: list[float] = []
    for start in range(0, len(order), config.batch_size):
        if should_stop is not None and should_stop():
            return float(np.mean(losses)) if losses else float("nan"), True
        batch = order[start : start + config.batch_size]
        where = model.head.weight.device
        loss = _loss(model, inputs[batch].to(where), answers[batch].to(where), config, generator)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses)), False


def _train_mode(model: TunedModel) -> None:
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()


def seconds_per_image_epoch(
    tail: torch.nn.Module, activations: torch.Tensor, config: TuneConfig, steps: int = 3
) -> float:
    """What one image (or view) costs one epoch of :func:`fine_tune` on this machine, measured:
    the fastest of ``steps`` training steps, after a warm-up one, of a throwaway copy of
    ``tail`` and a head on ``config.batch_size`` rows of ``activations`` (repeated as needed),
    divided by the batch size. ``tail`` is left as it was.

    Args:
        tail: a :class:`embeddings.tuning.SplitTower`'s tail.
        activations: trunk activations ``(n, C, H, W)`` of any images (the cost depends on their
            shape only).
        config: the recipe (batch size, label smoothing, mixup) the job would run.
        steps: timed steps.
    """
    size = config.batch_size
    rows = activations.float().repeat(-(-size // len(activations)), 1, 1, 1)[:size]
    model = TunedModel(copy.deepcopy(tail), ["a", "b"], _width(tail, rows[:1]), config.tuned_blocks)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr_blocks)
    answers = torch.arange(size) % 2
    generator = torch.Generator().manual_seed(config.seed)
    _train_mode(model)
    seconds = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        loss = _loss(model, rows, answers, config, generator)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        seconds.append(time.perf_counter() - started)
    return min(seconds[1:]) / size


def estimated_tuning_seconds(
    labelled: int, config: TuneConfig, per_image_epoch: float, holdout: float = 0.0
) -> float:
    """Seconds :func:`fine_tune` trains on ``labelled`` images, ``holdout`` of them kept out,
    if it runs all ``config.max_epochs`` epochs (early stopping ends most runs sooner: B13's at
    2,000 labels ran 7-9 of 10) at ``per_image_epoch``: each epoch passes over the fitted images
    and their views. Steps alone: a whole run also fits the head's start and validates."""
    fitted = labelled * (1 - holdout) * (1 - config.val_fraction) * (1 + config.views)
    return fitted * config.max_epochs * per_image_epoch


def _loss(
    model: TunedModel,
    inputs: torch.Tensor,
    answers: torch.Tensor,
    config: TuneConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Cross-entropy of one batch (label-smoothed, and on mixed-up activations when asked)."""
    smoothing = config.label_smoothing
    if config.mixup <= 0:
        return torch.nn.functional.cross_entropy(model(inputs), answers, label_smoothing=smoothing)
    seed = int(torch.randint(2**31, (1,), generator=generator))  # reproducible with the run's
    share = float(np.random.default_rng(seed).beta(config.mixup, config.mixup))
    partner = torch.randperm(len(inputs), generator=generator)
    mixed = share * inputs.float() + (1 - share) * inputs[partner].float()
    logits = model(mixed)
    return share * torch.nn.functional.cross_entropy(logits, answers, label_smoothing=smoothing) + (
        1 - share
    ) * torch.nn.functional.cross_entropy(logits, answers[partner], label_smoothing=smoothing)


def _accuracy(model: TunedModel, activations: torch.Tensor, truth: np.ndarray) -> float:
    if not len(truth):
        return float("nan")
    predicted = np.argmax(model.predict_proba(activations), axis=1)
    return float(np.mean(predicted == truth))

"""Uncertainty strategies: small classes in a registry keyed by ``name``.

A capture policy names its strategy (``"margin"`` by default); built-in strategies register
through the same :func:`register_strategy` an extension would use.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

from capture.errors import UnknownStrategy
from capture.scores import entropy_uncertainty, least_confidence, margin_uncertainty


class UncertaintyStrategy:
    """Maps class probabilities ``(n, k)`` to uncertainty ``(n,)`` in [0, 1]."""

    name: ClassVar[str]

    def uncertainty(self, proba: ArrayLike) -> np.ndarray:
        raise NotImplementedError


_STRATEGIES: dict[str, type[UncertaintyStrategy]] = {}


def register_strategy(cls: type[UncertaintyStrategy]) -> type[UncertaintyStrategy]:
    """Class decorator adding a strategy to the registry under ``cls.name``."""
    _STRATEGIES[cls.name] = cls
    return cls


def strategy_names() -> list[str]:
    """Names of every registered strategy, sorted."""
    return sorted(_STRATEGIES)


def get_strategy(name: str) -> UncertaintyStrategy:
    """A new instance of the strategy registered as ``name``.

    Raises:
        UnknownStrategy: no strategy has that name (an :class:`InvalidPolicy`).
    """
    try:
        return _STRATEGIES[name]()
    except KeyError:
        raise UnknownStrategy(
            f"unknown uncertainty strategy {name!r}; choose one of {', '.join(strategy_names())}"
        ) from None


@register_strategy
class MarginStrategy(UncertaintyStrategy):
    """Margin between the top two classes: the strong, cheap default."""

    name = "margin"

    def uncertainty(self, proba: ArrayLike) -> np.ndarray:
        return margin_uncertainty(proba)


@register_strategy
class EntropyStrategy(UncertaintyStrategy):
    """Normalised entropy: weighs the whole distribution, not just the top two classes."""

    name = "entropy"

    def uncertainty(self, proba: ArrayLike) -> np.ndarray:
        return entropy_uncertainty(proba)


@register_strategy
class LeastConfidenceStrategy(UncertaintyStrategy):
    """One minus the top probability, normalised."""

    name = "least_confidence"

    def uncertainty(self, proba: ArrayLike) -> np.ndarray:
        return least_confidence(proba)

"""Domain errors of the capture package.

``api/`` maps :class:`InvalidPolicy` to a client error (a user-supplied policy is wrong). The others
signal a programming or wiring mistake (wrong array shape, a vector from another backbone) and are
not the end user's fault.
"""

from __future__ import annotations


class CaptureError(Exception):
    """Base class of every error raised by ``capture/``."""


class InvalidPolicy(CaptureError, ValueError):
    """A capture policy setting is unknown, mistyped or out of range; safe to show a user."""


class InvalidArray(CaptureError, ValueError):
    """An array (probabilities, distances, vectors, ids) is misshaped or not finite."""


class DimensionMismatch(CaptureError, ValueError):
    """A vector's dimension differs from its index's (a function pins one backbone)."""


class UnknownKind(CaptureError, ValueError):
    """An index entry kind other than ``"labelled"`` or ``"pending"`` was used."""


class UnknownStrategy(InvalidPolicy):
    """A policy names an uncertainty strategy that is not registered."""

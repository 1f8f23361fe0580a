"""Domain errors of the review queue."""

from store import LabelNotAllowed

__all__ = ["InvalidFilter", "InvalidTransition", "ItemNotFound", "LabelNotAllowed", "ReviewError"]


class ReviewError(Exception):
    """Base class; the message is shown to the API caller."""


class ItemNotFound(ReviewError, LookupError):
    """No review item with that id in this function."""


class InvalidTransition(ReviewError):
    """The item's status does not allow that action (e.g. annotating a discarded item)."""


class InvalidFilter(ReviewError, ValueError):
    """A listing asked for a status or kind that does not exist."""


class AlreadyAnnotated(InvalidTransition):
    """The item was annotated with another label first (a repeat with the same label is not)."""

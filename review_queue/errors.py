"""Domain errors of the review queue."""


class ReviewError(Exception):
    """Base class; the message is shown to the API caller."""


class ItemNotFound(ReviewError, LookupError):
    """No review item with that id in this function."""


class InvalidTransition(ReviewError):
    """The item's status does not allow that action (e.g. annotating a discarded item)."""


class LabelNotAllowed(ReviewError, ValueError):
    """The label does not exist and the function's policy forbids creating labels from review."""


class AlreadyAnnotated(InvalidTransition):
    """The item was annotated with another label first (a repeat with the same label is not)."""
